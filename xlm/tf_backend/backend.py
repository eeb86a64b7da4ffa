"""Which Keras backend the stack runs on, and what a value being traced lets a layer read.

`tf_only` is `xlm.tf_backend.tensorflow_only` on the TensorFlow backend and None elsewhere: every
TensorFlow fast path in the stack sits behind `if tf_only is not None`.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import keras

BACKEND: str = keras.backend.backend()

tf_only: ModuleType | None = None
if BACKEND == "tensorflow":
    from xlm.tf_backend import tensorflow_only as tf_only


def values_readable(x: Any = None) -> bool:
    """Whether the values of `x` (a tensor of the current call) can be read on the Python side: False
    while TensorFlow traces a graph, inside `jax.jit` or a JAX shape inference, under `torch.compile` or
    in Keras' symbolic shape inference on torch (meta tensors)."""
    if tf_only is not None:
        return tf_only.executing_eagerly()
    if BACKEND == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if BACKEND == "torch":
        import torch

        if torch.compiler.is_compiling():
            return False
        return getattr(getattr(x, "device", None), "type", None) != "meta"
    return True


def known_shape(x: Any) -> tuple:
    """The shape of `x` with every dimension not known as a Python int (graph tracing, JAX symbolic
    dimensions, torch's stand-in sizes of symbolic shape inference) as None."""
    if BACKEND == "torch" and not values_readable(x):
        return (None,) * len(x.shape)
    return tuple(d if isinstance(d, int) else None for d in x.shape)


def is_integer_dtype(x: Any) -> bool:
    """Whether the tensor or array `x` holds integers."""
    return "int" in keras.backend.standardize_dtype(x.dtype)


def register_output_structures(classes: list[type]) -> None:
    """Make the output dataclasses nested structures for Keras (functional models, predict, metrics) and
    for the backend's own tracing (`jax.jit` outputs, torch's pytree): flattened to their non-None fields
    in order, as tf.nest made them for tf-keras."""

    def flatten(output: Any) -> tuple:
        keys = tuple(output.keys())
        return tuple(output[k] for k in keys), keys

    def flatten_with_entries(output: Any) -> tuple:  # optree's form: children, metadata, entry names
        children, keys = flatten(output)
        return children, keys, keys

    for cls in classes:
        if not dataclasses.is_dataclass(cls):
            continue

        def unflatten(keys: tuple, children: Any, cls: type = cls) -> Any:
            return cls(**dict(zip(keys, children)))

        if BACKEND == "torch":
            from torch.utils import _pytree

            if cls not in _pytree.SUPPORTED_NODES:
                _pytree.register_pytree_node(cls, flatten, lambda children, keys, u=unflatten: u(keys, children))
            continue
        try:
            import optree
        except ImportError:  # Keras then runs on dm-tree, which treats mappings as structures already
            pass
        else:
            try:
                optree.register_pytree_node(cls, flatten_with_entries, unflatten, namespace="keras")
            except ValueError:  # already registered (module reloaded)
                pass
        if BACKEND == "jax":
            import jax

            try:
                jax.tree_util.register_pytree_node(cls, flatten, unflatten)
            except ValueError:
                pass
