"""The Keras stack's TensorFlow-only code: speed paths and graph machinery that only TensorFlow has.

Imported by the other modules of `xlm.tf_backend` only when Keras runs on TensorFlow
(`KERAS_BACKEND=tensorflow`); on JAX and torch each of these has a generic `keras.ops` path beside
its caller. What lives here:

- `in_xla_compilation`: whether the graph being traced is compiled by XLA;
- `dense_matmul` / `matmul_transpose_b`: 2-D matmuls that skip `tf.tensordot`'s eager overhead and
  the transposed copy of a (vocab × dim) table;
- `philox_dropout`: dropout masks from Philox4x32-10 bits, identical eagerly, in graphs and under XLA;
- `linear_cross_entropy` (a hand-written gradient) and `labelled_rows` (the labelled-rows LM loss);
- `graph_input_assertions` / `after`: run-time input checks of traced (non-XLA) graphs;
- `InferenceGraph`: repeated eager inference as one `tf.function`;
- `batch_function`: the pipelines' shape-relaxed tf.function; `stable_argsort_descending` for top-p;
- `serving_signature`, `serving_function`, `save_saved_model` for SavedModel export and TF Serving;
  `replicas_in_sync` for `tf.distribute`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import tensorflow as tf

from xlm.config import XLMConfig
from xlm.modeling_utils import check_same_shape, check_sequence_length, id_range_message, sequence_length_message
from xlm.outputs import ModelOutput


def executing_eagerly() -> bool:
    """Whether TensorFlow runs op by op (not tracing a graph)."""
    return tf.executing_eagerly()


def in_xla_compilation() -> bool:
    """Whether the graph being traced is compiled by XLA (`tf.function(jit_compile=True)`, Keras' too).

    The LM loss, dropout and the graph input checks pick their XLA paths by it.
    """
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # TensorFlow moved these private modules: answer yes, the paths that work everywhere
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


# --- matrix products ----------------------------------------------------------------------------


def dense_matmul(inputs: Any, kernel: Any, bias: Any, units: int) -> Any:
    """(..., in) @ kernel + bias as one 2-D matmul.

    Keras' Dense goes through `tf.tensordot` for inputs of rank > 2, several more operations per
    call: a third of the eager forward pass of a small model.
    """
    kernel = tf.convert_to_tensor(kernel)
    if kernel.dtype != inputs.dtype:
        kernel = tf.cast(kernel, inputs.dtype)
    if len(inputs.shape) == 2:
        outputs = tf.matmul(inputs, kernel)
    else:
        outputs = tf.matmul(tf.reshape(inputs, (-1, kernel.shape[0])), kernel)
        outputs = _restore_leading_dims(outputs, inputs, units)
    if bias is not None:
        outputs = tf.nn.bias_add(outputs, tf.cast(bias, outputs.dtype))
    return outputs


def matmul_transpose_b(a: Any, b: Any) -> Any:
    """a @ bᵀ over the last two axes with no transposed copy of `b`, forward or backward.

    `a` of rank > 2 against a 2-D `b` (the tied LM projection) is one 2-D matmul.
    """
    if len(a.shape) > 2 and len(b.shape) == 2:
        flat = tf.matmul(tf.reshape(a, (-1, a.shape[-1])), b, transpose_b=True)
        return _restore_leading_dims(flat, a, b.shape[0])
    return tf.matmul(a, b, transpose_b=True)


def _restore_leading_dims(flat: Any, like: Any, units: int) -> Any:
    """(tokens, units) back to (*like.shape[:-1], units), keeping the static shape a dynamic reshape loses."""
    outputs = tf.reshape(flat, tf.concat([tf.shape(like)[:-1], [units]], axis=0))
    if not tf.executing_eagerly():
        outputs.set_shape(like.shape[:-1] + [units])
    return outputs


# --- dropout ------------------------------------------------------------------------------------

# Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011), as TensorFlow runs it
_PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_PHILOX_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
_PHILOX_SEED_KEY = 0x02461E293EC8F720  # TensorFlow's key for scrambling a seed into a key and counter


def _split_uint64(x: Any) -> tuple[Any, Any]:
    """(low, high) uint32 words of uint64 `x`."""
    return tf.cast(x, tf.uint32), tf.cast(tf.bitwise.right_shift(x, tf.constant(32, tf.uint64)), tf.uint32)


def _philox_rounds(counter: list, key: list) -> list:
    """The 4 uint32 outputs of Philox4x32-10 for 4 uint32 counter words and 2 key words (tensors)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_ in range(10):
        product0 = tf.cast(c0, tf.uint64) * _PHILOX_MULTIPLIERS[0]
        product1 = tf.cast(c2, tf.uint64) * _PHILOX_MULTIPLIERS[1]
        (low0, high0), (low1, high1) = _split_uint64(product0), _split_uint64(product1)
        c0, c1, c2, c3 = high1 ^ c1 ^ k0, low1, high0 ^ c3 ^ k1, low0
        if round_ < 9:
            k0, k1 = k0 + _PHILOX_KEY_STEPS[0], k1 + _PHILOX_KEY_STEPS[1]
    return [c0, c1, c2, c3]


def philox_uint32(shape: Any, seed: Any) -> Any:
    """Random uint32 bits of `shape` for a 2-element int seed: exactly what
    `tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")` returns.

    Under XLA the generator is written out in 32-bit ops here: XLA's own Philox on CPU is about 4× slower
    (it took 200 ms of a 1.9 s training step of the 6-layer benchmark model). Elsewhere TensorFlow's kernel
    runs.
    """
    if not in_xla_compilation():
        return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")
    # the seed scrambled into a key and a 128-bit counter, as tf.random's _philox_scramble_seed does (XLA's own
    # generator for these 4 numbers: the same ops written out here would be fused into every element's work)
    mix = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[4], key=tf.constant([_PHILOX_SEED_KEY], tf.uint64), counter=tf.cast(seed, tf.uint64), alg=1, dtype=tf.uint32)
    # key = mix[0] | mix[1] << 32, counter = (0, mix[2] | mix[3] << 32): block j (4 words) uses counter + j, whose
    # low 64 bits are j with no carry. XLA vectorises this only with 32-bit block indices; sizes are int32 anyway.
    size = tf.reduce_prod(shape)
    c0 = tf.bitcast(tf.range((size + 3) // 4), tf.uint32)
    words = _philox_rounds([c0, tf.zeros_like(c0), tf.fill(tf.shape(c0), mix[2]), tf.fill(tf.shape(c0), mix[3])],
                           [mix[0], mix[1]])
    return tf.reshape(tf.reshape(tf.stack(words, axis=1), [-1])[:size], shape)


def philox_dropout(inputs: Any, rate: float, seed: Any) -> Any:
    """Dropout (training mode) of `inputs`: an element is kept when its uint32 Philox draw is at least
    round(rate · 2³²); `seed` is a Keras SeedGenerator's state, folded into 31 bits."""
    if rate >= 1:
        return tf.zeros_like(inputs)
    seed = tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)
    threshold = min(round(rate * 2**32), 2**32 - 1)
    keep = philox_uint32(tf.shape(inputs), seed) >= tf.constant(threshold, tf.uint32)
    return tf.where(keep, inputs * tf.cast(1 / (1 - rate), inputs.dtype), tf.zeros_like(inputs))


# --- LM loss ------------------------------------------------------------------------------------


def linear_cross_entropy(x: Any, weight: Any, bias: Any, labels: Any) -> Any:
    """The mean cross entropy of the logits x @ weightᵀ + bias (x: (tokens, dim)) against `labels` (tokens,),
    -100 ignored, with a hand-written gradient (softmax − one-hot): the twin of the PyTorch stack's
    `_LinearCrossEntropy`, for the loss alone.

    Autodiff of the fused softmax cross entropy makes more passes over the (tokens × vocabulary) logits; under
    XLA this takes about 45 ms off the 8 × 128 fit step (BENCHMARKS.md). Nothing labelled: a NaN loss with
    zero gradients, as `mean_over_kept`; a label out of range: a NaN loss.
    """
    x, weight, bias = (tf.convert_to_tensor(t) for t in (x, weight, bias))
    labels = tf.cast(labels, tf.int32)
    keep = tf.not_equal(labels, -100)
    safe_labels = tf.where(keep, labels, tf.zeros_like(labels))
    keep = tf.cast(keep, tf.float32)
    count = tf.reduce_sum(keep)
    denominator = tf.maximum(count, 1.0)

    @tf.custom_gradient
    def loss_of(x: Any, weight: Any, bias: Any) -> Any:
        logits = tf.cast(tf.matmul(x, weight, transpose_b=True) + bias, tf.float32)
        log_normaliser = tf.reduce_logsumexp(logits, axis=1)
        picked = tf.gather(logits, safe_labels[:, None], axis=1, batch_dims=1)[:, 0]
        loss = tf.reduce_sum((log_normaliser - picked) * keep) / denominator

        def grad(upstream: Any) -> tuple[Any, Any, Any]:
            scale = (upstream * keep / denominator)[:, None]
            one_hot = tf.one_hot(safe_labels, tf.shape(logits)[1], dtype=tf.float32)
            grad_logits = (tf.exp(logits - log_normaliser[:, None]) - one_hot) * scale
            grad_bias = tf.cast(tf.reduce_sum(grad_logits, axis=0), bias.dtype)
            grad_logits = tf.cast(grad_logits, x.dtype)
            return tf.matmul(grad_logits, weight), tf.matmul(grad_logits, x, transpose_a=True), grad_bias

        return loss, grad

    # a label outside [0, vocab) other than -100: NaN, as TensorFlow's sparse cross entropy gives under XLA
    out_of_range = tf.reduce_any((labels < -100) | ((labels > -100) & (labels < 0)) | (labels >= tf.shape(weight)[0]))
    flag = tf.where((count > 0) & ~out_of_range, 0.0, float("nan"))
    return loss_of(x, weight, bias) + tf.stop_gradient(flag)


def labelled_rows(hidden_states: Any, labels: Any, dim: int) -> tuple[Any, Any]:
    """The hidden states (rows, dim) and labels (rows,) of the positions whose label is not -100
    (a dynamic row count: graphs only, not XLA)."""
    labels = tf.reshape(labels, (-1,))
    rows = tf.where(labels != -100)[:, 0]
    return tf.gather(tf.reshape(hidden_states, (-1, dim)), rows), tf.gather(labels, rows)


# --- input checks in graphs ---------------------------------------------------------------------


def graph_input_assertions(
    config: XLMConfig,
    reference_name: str,
    reference: Any,
    shape: tuple,
    others: dict[str, Any],
    ids: list,
    lengths: Any,
    check_lengths: bool,
    check_positions: bool,
) -> list:
    """The input checks of a traced graph: what the trace knows is checked now (ValueError), the rest
    becomes tf.debugging assertions, returned for the lookups to depend on (TensorFlow's embedding lookup
    on GPU returns zeros for out-of-range ids instead of failing). XLA ignores assertions, and computing
    them only slows the compiled step: there, only the trace-time checks run."""
    assertions = []
    xla = in_xla_compilation()
    dynamic_shape = tf.shape(reference)[:2]
    for name, value in others.items():
        if value is None:
            continue
        static = tuple(value.shape)
        if None not in static and None not in shape:
            check_same_shape(reference_name, shape, **{name: static})
        elif not xla:
            assertions.append(tf.debugging.assert_equal(
                tf.shape(value), dynamic_shape, message=f"{name} must have the shape of {reference_name}"
            ))
    if lengths is not None and not xla:
        assertions.append(tf.debugging.assert_equal(
            tf.shape(lengths), dynamic_shape[:1], message=f"lengths must have the batch size of {reference_name}"
        ))
    if check_positions:
        if shape[1] is not None:
            check_sequence_length(shape[1], config.max_position_embeddings)
        elif not xla:
            assertions.append(tf.debugging.assert_less_equal(
                dynamic_shape[1], config.max_position_embeddings,
                message=sequence_length_message(config.max_position_embeddings),
            ))
    if xla:
        return []
    for name, values, limit, limit_name in ids:
        message = id_range_message(name, limit, limit_name)
        values = tf.cast(values, tf.int64)
        assertions.append(tf.debugging.assert_non_negative(values, message=message))
        assertions.append(tf.debugging.assert_less(values, tf.constant(limit, tf.int64), message=message))
    if check_lengths:
        values = tf.cast(lengths, tf.int32)
        message = "lengths contains a value outside [0, sequence length]"
        assertions.append(tf.debugging.assert_non_negative(values, message=message))
        assertions.append(tf.debugging.assert_less_equal(values, dynamic_shape[1], message=message))
    return [a for a in assertions if a is not None]


def after(assertions: list, *tensors: Any) -> tuple:
    """`tensors` (None kept) made to depend on `assertions`: no lookup runs before the checks pass."""
    with tf.control_dependencies(assertions):
        return tuple(None if t is None else tf.identity(t) for t in tensors)


# --- graphs of whole calls ----------------------------------------------------------------------


class InferenceGraph:
    """A model's call as one tf.function (retraced per input signature, shapes relaxed)."""

    def __init__(self, model: Any, call: Any) -> None:
        self._model = model
        self._call = call
        self.output_class: type | None = None
        self.function = tf.function(self._run, reduce_retracing=True, autograph=False)

    def _run(self, **kwargs: Any) -> Any:
        outputs = self._call(self._model, **kwargs)
        if isinstance(outputs, ModelOutput):
            # tf.function returns plain structures; the output class is rebuilt outside.
            self.output_class = type(outputs)
            return dict(outputs)
        return outputs

    def __call__(self, **kwargs: Any) -> Any:
        outputs = self.function(**kwargs)
        return self.output_class(**outputs) if isinstance(outputs, dict) else outputs


def batch_function(forward: Any, names: list[str], gather: bool) -> Any:
    """`forward(inputs, [gather])` as a tf.function over int32 inputs of any batch and length (and (n, 2)
    gather pairs), so that batches of every shape reuse one graph (the pipelines' Keras runner)."""
    signature = [{name: tf.TensorSpec([None, None], tf.int32) for name in names}]
    if gather:
        signature.append(tf.TensorSpec([None, 2], tf.int32))
    return tf.function(forward, input_signature=signature)


def stable_argsort_descending(x: Any) -> Any:
    """Indices sorting the last axis of `x` in descending order, equal values in index order."""
    return tf.argsort(x, axis=-1, direction="DESCENDING", stable=True)


#: the attribute name under which `tf.saved_model.save` looks for the default serving function
DEFAULT_SIGNATURE_ATTR = "_default_save_signature"


def serving_signature(names: list[str], rank: int, dtype: Any = tf.int32) -> dict[str, Any]:
    """`tf.TensorSpec`s (int32) of any batch and sequence length, by input name; each spec carries its
    name, which becomes the signature's input name (Keras and TensorFlow number unnamed ones args_0 ...)."""
    return {name: tf.TensorSpec([None] * rank, dtype, name=name) for name in names}


def serving_function(model: Any) -> Any:
    """`model.serving_output(model(inputs))` as one tf.function (kept on the model), traced per input signature."""
    function = getattr(model, "_serving_function", None)
    if function is None:
        def serve(inputs: dict[str, Any]) -> dict[str, Any]:
            return model.serving_output(model(inputs, training=False))

        function = tf.function(serve, autograph=False)
        # no Keras or TensorFlow tracking: the SavedModel gets the function as a signature, not as an attribute
        object.__setattr__(model, "_serving_function", function)
    return function


def serving_concrete_function(model: Any, dtype: Any = tf.int32) -> Any:
    """The serving function traced for `model.input_signature` (int32, or its int64 twin)."""
    signature = model.input_signature
    if dtype != tf.int32:
        signature = {name: tf.TensorSpec(spec.shape, dtype, name=spec.name) for name, spec in signature.items()}
    return serving_function(model).get_concrete_function(signature)


def save_saved_model(model: Any, directory: str, signatures: Any = None) -> str:
    """Write `model` as a SavedModel to `directory` (replacing one there), through a temporary directory
    beside it that is renamed at the end; signatures `serving_default` (int32) and `int64_serving` unless
    given, as transformers' TF `save_pretrained(saved_model=True)`. Returns `directory`."""
    if signatures is None:
        signatures = {
            "serving_default": serving_concrete_function(model),
            "int64_serving": serving_concrete_function(model, tf.int64),
        }
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        tf.saved_model.save(model, staging, signatures=signatures)
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def replicas_in_sync() -> int:
    """The replica count of the current `tf.distribute` strategy (1 outside one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


__all__ = [
    "DEFAULT_SIGNATURE_ATTR",
    "InferenceGraph",
    "after",
    "batch_function",
    "dense_matmul",
    "executing_eagerly",
    "graph_input_assertions",
    "in_xla_compilation",
    "labelled_rows",
    "linear_cross_entropy",
    "matmul_transpose_b",
    "philox_dropout",
    "philox_uint32",
    "replicas_in_sync",
    "save_saved_model",
    "serving_concrete_function",
    "serving_function",
    "serving_signature",
    "stable_argsort_descending",
]
