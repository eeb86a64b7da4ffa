"""The Keras 3 XLM encoder (TFXLMMainLayer), the shared model base class and TFXLMModel.

Twin of `xlm/torch_backend/modeling.py`: same classes (with a TF prefix), same call arguments,
same numbers. The forward pass reads like the paper: embeddings -> layers -> mask. Beyond
transformers' XLM: gradient checkpointing (`gradient_checkpointing_enable`), each Transformer layer
rematerialised with `keras.remat` on TensorFlow, JAX and torch.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from xlm.config import XLMConfig
from xlm.modeling_utils import (
    check_id_range,
    check_new_positions,
    check_same_shape,
    check_sequence_length,
    check_word_embedding_table,
    mean_resized_rows,
    resized_vocab_size,
    sinusoidal_table,
)
from xlm.outputs import BaseModelOutput, ModelOutput
from xlm.tf_backend.backend import BACKEND, known_shape, register_output_structures, tf_only, values_readable
from xlm.tf_backend.layers import (
    TFXLMDropout,
    TFXLMEmbedding,
    TFXLMMultiHeadAttention,
    TFXLMPredLayer,
    TFXLMTransformerFFN,
    layer_norm,
    normal_initializer,
)
from xlm.weights import StateDictMatch, check_keras_layout, match_state_dict, weight_specs

ops = keras.ops

_PACKAGE = "xlm"


# --- inputs -------------------------------------------------------------------------------------


def unpack_inputs(call: Any) -> Any:
    """Let a model's `call` take its inputs as keywords, as one dict, or as a list in signature order.

    `model({"input_ids": ids, "labels": y})` and `model([ids, mask])` then work like
    `model(input_ids=ids, ...)`, as transformers' TF models accept (Keras' fit passes dicts). The
    call then goes through `TFXLMPreTrainedModel._dispatch` (graph-compiled eager inference).
    """
    names = [n for n in inspect.signature(call).parameters if n != "self"]

    @functools.wraps(call)
    def wrapper(self: Any, input_ids: Any = None, *args: Any, **kwargs: Any) -> Any:
        kwargs.update(dict(zip(names[1:], args)))
        if isinstance(input_ids, Mapping):
            packed = dict(input_ids)
        elif isinstance(input_ids, (list, tuple)):
            if len(input_ids) > len(names):
                raise ValueError(f"got {len(input_ids)} positional inputs; {type(self).__name__} takes at most {len(names)}")
            packed = dict(zip(names, input_ids))
        else:
            packed = {"input_ids": input_ids}
        unknown = sorted(set(packed) - set(names))
        if unknown:
            raise ValueError(f"unknown input(s) {', '.join(unknown)} for {type(self).__name__}; expected {', '.join(names)}")
        for key, value in kwargs.items():
            if value is not None and packed.get(key) is not None and key != "training":
                raise ValueError(f"{key} was given both inside the inputs and as a keyword argument")
            if value is not None or key not in packed:
                packed[key] = value
        return self._dispatch(call, packed)

    return wrapper


def check_inputs(
    config: XLMConfig,
    input_ids: Any = None,
    attention_mask: Any = None,
    langs: Any = None,
    token_type_ids: Any = None,
    position_ids: Any = None,
    lengths: Any = None,
    inputs_embeds: Any = None,
    past: int = 0,
) -> list:
    """Reject inputs that would index outside a table or disagree in shape, before any lookup.

    Same checks and messages as the PyTorch stack, on every backend. Where values can be read (eagerly),
    a ValueError is raised on the Python side (and [] returned). Where they can't, shapes known at trace
    time are checked the same way, and ids and lengths are not checked: under `jax.jit`, in Keras'
    symbolic shape inference and under XLA (which ignores assertions); in a TensorFlow graph without XLA
    the rest becomes tf.debugging assertions, returned for the lookups to depend on (TensorFlow's
    embedding lookup on GPU returns zeros for out-of-range ids instead of failing). The models' eager
    calls are checked before they enter any graph.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        if len(input_ids.shape) != 2:
            raise ValueError(f"input_ids must have shape (batch, sequence), got {list(input_ids.shape)}")
        reference_name, reference, shape = "input_ids", input_ids, known_shape(input_ids)
    else:
        if len(inputs_embeds.shape) != 3 or inputs_embeds.shape[-1] != config.emb_dim:
            raise ValueError(
                f"inputs_embeds must have shape (batch, sequence, {config.emb_dim}), got {list(inputs_embeds.shape)}"
            )
        reference_name, reference, shape = "inputs_embeds[..., 0]", inputs_embeds, known_shape(inputs_embeds)[:2]
    others = {"attention_mask": attention_mask, "langs": langs, "token_type_ids": token_type_ids,
              "position_ids": position_ids}
    ids = [("input_ids", input_ids, config.vocab_size, "vocab_size"),
           ("token_type_ids", token_type_ids, config.vocab_size, "vocab_size"),
           ("langs", langs, config.n_langs, "n_langs"),
           ("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")]
    ids = [entry for entry in ids if entry[1] is not None]
    check_lengths = lengths is not None and attention_mask is None

    if values_readable(reference):
        check_same_shape(reference_name, shape, **{k: None if v is None else tuple(v.shape) for k, v in others.items()})
        if lengths is not None:
            check_same_shape(f"the batch of {reference_name}", shape[:1], lengths=tuple(lengths.shape))
        check_new_positions(past, shape[1])
        if position_ids is None:
            check_sequence_length(shape[1], config.max_position_embeddings)
        for name, values, limit, limit_name in ids:
            values = np.asarray(ops.convert_to_numpy(values))
            if values.size:
                check_id_range(name, int(values.min()), int(values.max()), limit, limit_name)
        if check_lengths and int(np.prod(lengths.shape)):
            values = np.asarray(ops.convert_to_numpy(lengths))
            low, high = int(values.min()), int(values.max())
            if low < 0 or high > shape[1]:
                raise ValueError(
                    f"lengths contains {low if low < 0 else high}, outside [0, {shape[1]}] (the sequence length)"
                )
        return []
    if tf_only is not None:
        return tf_only.graph_input_assertions(config, reference_name, reference, shape, others, ids, lengths,
                                              check_lengths, check_positions=position_ids is None)
    # traced on JAX / torch: the shapes the trace knows
    for name, value in others.items():
        static = None if value is None else known_shape(value)
        if static is not None and None not in static and None not in shape:
            check_same_shape(reference_name, shape, **{name: static})
    if position_ids is None and shape[1] is not None:
        check_sequence_length(shape[1], config.max_position_embeddings)
    return []


class TFXLMCache(dict):
    """An incremental-decoding cache: the PyTorch stack's cache dict, as a type Keras passes through.

    Holds each layer's keys and values (`cache[layer_idx]`) and `cache["slen"]`, the positions
    already encoded. Start with `TFXLMCache()` and pass the whole sequence on every call; only the
    positions past `cache["slen"]` are computed and returned. (A plain dict would be copied by
    Keras on the way into the model, so its updates would be lost.)
    """


# --- the encoder --------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMMainLayer(keras.layers.Layer):
    """The XLM Transformer encoder, the layer named "transformer" in every Keras XLM model.

    Twin of the PyTorch `XLMModel`'s forward pass: embeddings (words + positions + languages +
    token types) → LayerNorm → for each layer: attention, add & norm, feed-forward, add & norm,
    padding mask.

    Args:
        config: the model's `XLMConfig`.

    Example:
        >>> encoder = TFXLMMainLayer(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> encoder(input_ids=np.array([[0, 20, 30, 1]])).last_hidden_state.shape
        TensorShape([1, 4, 32])
    """

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not config.is_encoder:
            raise NotImplementedError("XLM is an encoder only: is_encoder=False is not supported")
        self.config = config
        dim = config.emb_dim
        policy = self.dtype_policy

        # === Embeddings ===
        table = sinusoidal_table(config.max_position_embeddings, dim) if config.sinusoidal_embeddings else None
        self.position_embeddings = TFXLMEmbedding(
            config.max_position_embeddings, dim, config.embed_init_std, table=table,
            name="position_embeddings", dtype=policy,
        )
        self.lang_embeddings = None
        if config.uses_lang_embeddings:
            self.lang_embeddings = TFXLMEmbedding(
                config.n_langs, dim, config.embed_init_std, name="lang_embeddings", dtype=policy
            )
        self.embeddings = TFXLMEmbedding(
            config.vocab_size, dim, config.embed_init_std, weight_name="weight", padding_idx=config.pad_index,
            name="embeddings", dtype=policy,
        )
        self.layer_norm_emb = layer_norm(config.layer_norm_eps, "layer_norm_emb", policy)
        self.dropout = TFXLMDropout(config.dropout, dtype=policy)

        # === Transformer layers ===
        eps = config.layer_norm_eps
        self.attentions = [
            TFXLMMultiHeadAttention(config, i, name=f"attentions_{i}", dtype=policy) for i in range(config.n_layers)
        ]
        self.layer_norm1 = [layer_norm(eps, f"layer_norm1_{i}", policy) for i in range(config.n_layers)]
        self.ffns = [TFXLMTransformerFFN(config, name=f"ffns_{i}", dtype=policy) for i in range(config.n_layers)]
        self.layer_norm2 = [layer_norm(eps, f"layer_norm2_{i}", policy) for i in range(config.n_layers)]
        #: training calls rematerialise each layer (see TFXLMPreTrainedModel.gradient_checkpointing_enable)
        self.gradient_checkpointing = False

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        shape = (None, None, self.config.emb_dim)
        self.position_embeddings.build()
        if self.lang_embeddings is not None:
            self.lang_embeddings.build()
        self.embeddings.build()
        self.layer_norm_emb.build(shape)
        for i in range(self.config.n_layers):
            self.attentions[i].build()
            self.layer_norm1[i].build(shape)
            self.ffns[i].build()
            self.layer_norm2[i].build(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TFXLMMainLayer":
        config = dict(config)
        return cls(XLMConfig.from_dict(config.pop("config")), **config)

    def _norm(self, layer: Any, x: Any) -> Any:
        """A LayerNorm computed in float32 (see `layer_norm`), returned in the compute dtype."""
        return ops.cast(layer(x), self.compute_dtype)

    def _layer_head_masks(self, head_mask: Any) -> list:
        """Per-layer head masks shaped (1, n_heads, 1, 1), or None for each layer."""
        n_layers, n_heads = self.config.n_layers, self.config.n_heads
        if head_mask is None:
            return [None] * n_layers
        head_mask = ops.convert_to_tensor(head_mask)
        if tuple(head_mask.shape) == (n_heads,):
            head_mask = ops.repeat(head_mask[None], n_layers, axis=0)
        elif tuple(head_mask.shape) != (n_layers, n_heads):
            raise ValueError(
                f"head_mask has shape {list(head_mask.shape)}; expected [{n_heads}] (n_heads) or "
                f"[{n_layers}, {n_heads}] (n_layers, n_heads)"
            )
        head_mask = ops.cast(head_mask, self.compute_dtype)
        return [head_mask[i][None, :, None, None] for i in range(n_layers)]

    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> BaseModelOutput | tuple:
        """Encode a batch; the arguments are those of the PyTorch `XLMModel.forward`.

        Args:
            input_ids: token ids (batch, seq); or give `inputs_embeds` (batch, seq, emb_dim).
            attention_mask: 1 for tokens, 0 for padding (batch, seq). Without it, padding is given by
                `lengths` (batch,), or counted as the tokens that are not `pad_index`.
            langs: language id of every token (batch, seq); used when the model has language embeddings.
            token_type_ids: segment ids (batch, seq), looked up in the word-embedding table.
            position_ids: positions (batch, seq); 0..seq-1 by default (restart them for TLM pairs).
            cache: a `TFXLMCache` for incremental decoding (see there).
            head_mask: multiplies the attention probabilities, (n_heads,) or (n_layers, n_heads).
            output_attentions / output_hidden_states: also return every layer's attention
                probabilities / hidden states (the embeddings output first).
            return_dict: return a `BaseModelOutput` (default) or a tuple.
            training: dropout on (only then).

        Inputs are checked as in the PyTorch stack, with its ValueError messages (`check_inputs`): eagerly
        on every backend; under `jax.jit`, XLA or Keras' symbolic tracing only their shapes, since ids are
        unknown values there (as under `torch.compile` in the PyTorch stack).
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict
        if cache is not None and not isinstance(cache, TFXLMCache):
            raise TypeError(
                f"cache must be an xlm.tf_backend.TFXLMCache (Keras copies a plain dict, losing its updates), "
                f"got {type(cache).__name__}"
            )
        past = cache.get("slen", 0) if cache is not None else 0
        assertions = check_inputs(
            config, input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, inputs_embeds, past
        )
        if assertions:  # in a TensorFlow graph: no lookup before the checks have passed
            input_ids, langs, token_type_ids, position_ids, lengths, inputs_embeds = tf_only.after(
                assertions, input_ids, langs, token_type_ids, position_ids, lengths, inputs_embeds
            )
        slen = ops.shape(input_ids if input_ids is not None else inputs_embeds)[1]
        positions = ops.arange(slen)

        # padding mask (bs, slen): given, from lengths, or from the pad tokens; None = no padding
        mask = attention_mask
        if mask is None:
            if lengths is None and input_ids is not None:
                lengths = ops.sum(ops.cast(ops.not_equal(input_ids, config.pad_index), "int32"), axis=1)
            if lengths is not None:
                mask = positions[None, :] < ops.cast(lengths, positions.dtype)[:, None]

        # attention mask: the lower triangle (causal; padding is removed by the mask multiply after
        # each layer), (1, qlen, klen); or the padded keys (bidirectional), (bs, klen)
        if config.causal:
            attn_mask = positions[None, past:, None] >= positions[None, None, :]
        elif mask is not None:
            attn_mask = mask
        else:
            attn_mask = ops.ones((1, slen), "bool")

        # positions already in the cache are not recomputed
        if past:
            input_ids = input_ids[:, past:] if input_ids is not None else None
            inputs_embeds = inputs_embeds[:, past:] if inputs_embeds is not None else None
            langs = langs[:, past:] if langs is not None else None
            token_type_ids = token_type_ids[:, past:] if token_type_ids is not None else None
            position_ids = position_ids[:, past:] if position_ids is not None else None
            mask = mask[:, past:] if mask is not None else None
        if position_ids is None:
            position_ids = positions[None, past:]
        head_mask = self._layer_head_masks(head_mask)

        # === Embeddings ===
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        tensor = ops.cast(inputs_embeds, self.compute_dtype) + self.position_embeddings(position_ids)
        if langs is not None and self.lang_embeddings is not None:
            tensor = tensor + self.lang_embeddings(langs)
        if token_type_ids is not None:
            tensor = tensor + self.embeddings(token_type_ids)
        tensor = self._norm(self.layer_norm_emb, tensor)
        tensor = self.dropout(tensor, training=training)
        mask_multiplier = ops.cast(mask, tensor.dtype)[:, :, None] if mask is not None else None
        if mask_multiplier is not None:
            tensor = tensor * mask_multiplier

        # === Transformer layers ===
        hidden_states = () if output_hidden_states else None
        attentions = () if output_attentions else None
        rematerialised = self.gradient_checkpointing and bool(training) and cache is None
        for i in range(config.n_layers):
            if output_hidden_states:
                hidden_states += (tensor,)
            layer_args = (i, tensor, attn_mask, cache, head_mask[i], output_attentions, mask_multiplier, training)
            if rematerialised:
                tensor, weights = self._rematerialised_layer(*layer_args)
            else:
                tensor, weights = self._layer(*layer_args)
            if output_attentions:
                attentions += (weights,)
        if output_hidden_states:
            hidden_states += (tensor,)
        if cache is not None:
            cache["slen"] = int(slen)

        output = BaseModelOutput(last_hidden_state=tensor, hidden_states=hidden_states, attentions=attentions)
        return output if return_dict else output.to_tuple()

    def _layer(
        self, i: int, tensor: Any, attn_mask: Any, cache: TFXLMCache | None, head_mask: Any,
        output_attentions: bool, mask_multiplier: Any, training: bool,
    ) -> tuple[Any, Any]:
        """Transformer layer `i`: attention, add & norm, feed-forward, add & norm, padding mask; returns
        the new hidden states and the attention probabilities (None unless asked for)."""
        attn, weights = self.attentions[i](
            tensor, attn_mask, cache=cache, head_mask=head_mask, output_attentions=output_attentions,
            training=training,
        )
        tensor = self._norm(self.layer_norm1[i], tensor + self.dropout(attn, training=training))
        tensor = self._norm(self.layer_norm2[i], tensor + self.ffns[i](tensor, training=training))
        if mask_multiplier is not None:
            tensor = tensor * mask_multiplier
        return tensor, weights

    def _rematerialised_layer(
        self, i: int, tensor: Any, attn_mask: Any, cache: None, head_mask: Any,
        output_attentions: bool, mask_multiplier: Any, training: bool,
    ) -> tuple[Any, Any]:
        """`_layer` under `keras.remat`: only its input is kept, the layer runs again in the backward pass.

        The recomputation must draw the dropout masks of the first run, but a dropout layer's seed
        generator moves on at every draw (and JAX cannot let state change inside a checkpoint). So the
        layer's generators' states at its entry go in as inputs, the layer draws from them through
        `_ReplayedSeeds`, and the real generators move on once, outside, by the draws made: the masks
        are those of the layer without remat, bit for bit.
        """
        dropouts = [self.dropout, self.attentions[i].dropout, self.ffns[i].dropout]
        dropouts = [dropout for dropout in dropouts if getattr(dropout, "seed_generator", None) is not None]  # rate > 0
        starts = [dropout.seed_generator.state.value * 1 for dropout in dropouts]  # copies: the states move on below
        draws = [0] * len(dropouts)

        def rematerialised(tensor: Any, *starts: Any) -> Any:
            replayed = [_ReplayedSeeds(start, dropout.seed_generator) for start, dropout in zip(starts, dropouts)]
            originals = [dropout.seed_generator for dropout in dropouts]
            try:
                for dropout, generator in zip(dropouts, replayed):
                    object.__setattr__(dropout, "seed_generator", generator)  # no Keras tracking of a stand-in
                tensor, weights = self._layer(
                    i, tensor, attn_mask, None, head_mask, output_attentions, mask_multiplier, training
                )
            finally:
                for dropout, generator in zip(dropouts, originals):
                    object.__setattr__(dropout, "seed_generator", generator)
            draws[:] = [generator.draws for generator in replayed]
            # remat functions return tensors only
            return (tensor, weights) if output_attentions else tensor

        outputs = keras.remat(rematerialised)(tensor, *starts)
        for dropout, start, count in zip(dropouts, starts, draws):
            if count:
                dropout.seed_generator.state.assign(_seed_after(start, count))
        return outputs if output_attentions else (outputs, None)

    def get_input_embeddings(self) -> TFXLMEmbedding:
        """The word-embedding table."""
        return self.embeddings


def _seed_after(state: Any, draws: int) -> Any:
    """A SeedGenerator's state `draws` ordered draws after `state` (each adds [0, 1], as its `next` does)."""
    increment = ops.convert_to_tensor(np.array([0, draws]), dtype=keras.backend.standardize_dtype(state.dtype))
    return ops.add(state, increment)


class _ReplayedSeeds(keras.random.SeedGenerator):
    """A dropout layer's seed generator inside a rematerialised layer: the seeds the real generator gives
    from the state `start`, with no state of its own (see `TFXLMMainLayer._rematerialised_layer`)."""

    def __init__(self, start: Any, original: keras.random.SeedGenerator) -> None:
        # no SeedGenerator.__init__: it would make a state variable
        self.start = start
        self.draws = 0
        # Keras' torch dropout reads it: unseeded, it draws from torch's global generator (which
        # torch.utils.checkpoint replays) and never calls `next`
        self._initial_seed = original._initial_seed

    def next(self, ordered: bool = True) -> Any:
        if not ordered:
            raise NotImplementedError("a rematerialised layer replays ordered seed draws only")
        seed = _seed_after(self.start, self.draws)
        self.draws += 1
        return seed


# --- weights by name ----------------------------------------------------------------------------


def keras_weights(layer: Any) -> dict[str, Any]:
    """Every variable below `layer`, keyed by the '/'-joined layer names leading to it plus its name.

    These are the weight table's `keras_name`s ("transformer/attentions_0/q_lin/kernel"). Keras'
    own `variable.path` depends on where a layer was built, so it is not used. Random-seed state
    of dropout layers is not a weight and is left out.
    """
    found: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for variable in node._trainable_variables + node._non_trainable_variables:
            key = prefix + variable.name
            if key in found and found[key] is not variable:
                raise ValueError(f"two variables are both named {key!r}")
            found[key] = variable
        for child in node._flatten_layers(include_self=False, recursive=False):
            walk(child, f"{prefix}{child.name}/")

    walk(layer, "")
    return found


# --- the model base class -----------------------------------------------------------------------


def _output_classes() -> list[type]:
    from xlm import outputs as output_module

    return [value for value in vars(output_module).values()
            if isinstance(value, type) and issubclass(value, ModelOutput) and value is not ModelOutput]


register_output_structures(_output_classes())

_CHECKED_INPUTS = (
    "input_ids", "attention_mask", "langs", "token_type_ids", "position_ids", "lengths", "inputs_embeds",
)


def _signature_of(value: Any) -> Any:
    """What a traced call depends on: dtype and rank of a tensor, the value of anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return (str(value.dtype), len(value.shape))
    return type(value).__name__


def _plain_mapping(value: Any) -> Any:
    """A mapping that is not a plain dict (a tokenizer's BatchEncoding) as a dict; anything else as is."""
    return dict(value) if isinstance(value, Mapping) and type(value) is not dict else value


class TFXLMPreTrainedModel(keras.Model):
    """Base class of the Keras XLM models: config, checkpoints, Keras (de)serialisation, training hooks.

    - `from_pretrained(dir)` reads config.json and the weights (model.safetensors,
      pytorch_model.bin or tf_model.h5, ours or transformers'); `save_pretrained(dir)` writes
      config.json + tf_model.h5 in transformers' TF layout (plus model.safetensors on request).
    - `compile(optimizer=...)` without a loss trains on the model's own loss when the labels come
      in the inputs (or as `y`, which is then moved into the inputs); with `compile(loss=...)` the
      Keras loss sees the model's logits.
    - Inputs as keywords, as one dict, or as a list in the order of `call`'s arguments.

    Args:
        config: the model's `XLMConfig`.
        **kwargs: Keras model arguments (name, dtype: e.g. "mixed_float16").
    """

    config_class = XLMConfig
    base_model_prefix = "transformer"
    #: the weight-table architecture (transformers' PyTorch class name) of a concrete model
    architecture: str | None = None
    #: call arguments that carry targets; a `y` given to fit goes to them
    label_names: tuple[str, ...] = ()
    #: rank of the per-token inputs (3 for multiple choice: batch, choices, sequence)
    input_rank = 2
    #: On TensorFlow, run repeated eager inference calls (not training, no cache) through a traced tf.function:
    #: the same numbers without TensorFlow's per-operation eager overhead. The first call of each
    #: input signature runs op by op (no tracing cost for one-off calls). False: always op by op.
    graph_inference = True

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        if not isinstance(config, XLMConfig):
            raise TypeError(f"config must be an xlm.XLMConfig, got {type(config).__name__}")
        if self.architecture is not None:
            check_keras_layout(config, self.architecture)
        super().__init__(**kwargs)
        self.config = config
        self._inference_graph: Any = None  # a tensorflow_only.InferenceGraph
        self._eager_signatures: set = set()

    # === Config ===
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "TFXLMPreTrainedModel":
        config = dict(config)
        return cls(XLMConfig.from_dict(config.pop("config")), **config)

    # === Embeddings ===
    @property
    def base_model(self) -> TFXLMMainLayer:
        """The encoder (`self.transformer`)."""
        return self.transformer

    def get_input_embeddings(self) -> TFXLMEmbedding:
        """The word-embedding table."""
        return self.transformer.embeddings

    def get_output_embeddings(self) -> Any:
        """The layer the output projection reads (None without an LM head)."""
        return None

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> Any:
        """Give the word embeddings `new_num_tokens` rows (after adding tokens to the tokenizer).

        The PyTorch twin's semantics (transformers' PyTorch ones): rows kept from the start, cut or
        added at the end; `pad_to_multiple_of` rounds the size up; added rows drawn around the old
        rows' mean and covariance (`mean_resizing`) or from N(0, embed_init_std); the LM head's bias
        gets zeros for new words. Updates `config.vocab_size`. Resize before training: a built
        optimizer holds state for the old table, so that is a ValueError. Returns the embedding
        variable, as transformers' TFXLM models do.
        """
        embeddings = self.get_input_embeddings()
        old = ops.convert_to_numpy(embeddings.weight)
        new_rows = resized_vocab_size(self.config, old.shape[0], new_num_tokens, pad_to_multiple_of)
        if new_rows is None or new_rows == old.shape[0]:
            if new_rows is not None:
                self.config.vocab_size = new_rows
            return embeddings.weight
        self._check_optimizer_unbuilt(old.shape[0])
        added = new_rows - old.shape[0]
        table = old[:new_rows]
        if added > 0:
            if mean_resizing:
                draws = keras.random.normal((added, old.shape[1]), dtype="float32")
                rows = mean_resized_rows(old, added, np.asarray(draws, dtype=np.float64))
            else:
                draw = normal_initializer(self.config.embed_init_std)
                rows = np.asarray(draw((added, old.shape[1]), dtype="float32"))
            table = np.concatenate([old, rows.astype(old.dtype)])
        self._replace_word_embeddings(table)
        return embeddings.weight

    def set_input_embeddings(self, value: Any) -> None:
        """Replace the word-embedding table by `value`: a (rows, emb_dim) array, tensor or variable, or an
        embedding layer (another model's `get_input_embeddings()`). The LM head follows it, as in PyTorch.

        The values are copied: into the same variable when the shape is unchanged, else into a new one, and
        then, as `resize_token_embeddings`, `config.vocab_size` and the LM head's vocabulary follow. That is a
        ValueError once an optimizer is built, and for a table that would drop a special id.
        """
        embeddings = self.get_input_embeddings()
        table = np.asarray(keras.ops.convert_to_numpy(getattr(value, "weight", value)))
        rows = check_word_embedding_table(self.config, embeddings.weight.shape[0], table.shape)
        table = table.astype(embeddings.weight.dtype)
        if rows == embeddings.weight.shape[0]:
            embeddings.weight.assign(table)
            return
        self._check_optimizer_unbuilt(embeddings.weight.shape[0])
        self._replace_word_embeddings(table)

    def _check_optimizer_unbuilt(self, rows: int) -> None:
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and optimizer.built:
            raise ValueError(
                f"the optimizer already holds state for the {rows}-row word embeddings: resize before "
                "training, or compile() again with a new optimizer before resizing"
            )

    def _replace_word_embeddings(self, table: np.ndarray) -> None:
        """A new word-embedding variable holding `table` (another row count); the LM head and config follow."""
        self.get_input_embeddings().set_table(table)
        for layer in self._flatten_layers():
            if isinstance(layer, TFXLMPredLayer) and not layer.asm:
                layer.set_vocab_size(len(table))
        self.config.vocab_size = len(table)
        # traced functions hold the old variables and shapes
        self._inference_graph = None
        self._eager_signatures = set()
        self.train_function = self.test_function = self.predict_function = None

    def _return_dict(self, return_dict: bool | None) -> bool:
        return self.config.use_return_dict if return_dict is None else return_dict

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of weights (each variable once; dropout seed state is no weight); only those that train
        (`only_trainable`), or without the embedding tables (`exclude_embeddings`: words, positions,
        languages): the PyTorch twin's (and transformers' PyTorch) counts."""
        tables = set()
        if exclude_embeddings:
            tables = {id(layer.weight) for layer in self._flatten_layers() if isinstance(layer, TFXLMEmbedding)}
        counted: dict[int, int] = {}
        for variable in self.named_weights().values():
            if id(variable) not in tables and (variable.trainable or not only_trainable):
                counted[id(variable)] = int(np.prod(variable.shape))
        return sum(counted.values())

    # === Gradient checkpointing ===
    @property
    def supports_gradient_checkpointing(self) -> bool:
        """Whether `gradient_checkpointing_enable` works here: `keras.remat` rematerialises on TensorFlow,
        JAX and torch (the numpy and OpenVINO backends do not train)."""
        return BACKEND in ("tensorflow", "jax", "torch")

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Rematerialise every Transformer layer in training calls (`keras.remat`: tf.recompute_grad,
        jax.checkpoint or torch.utils.checkpoint): only each layer's input is kept for the backward pass,
        which runs the layer again. Losses and gradients are unchanged, dropout masks included. The
        PyTorch twin's method (transformers' XLM has none); `keras.remat` takes no options, so
        `gradient_checkpointing_kwargs` must be empty. Calls with a cache are not rematerialised."""
        if gradient_checkpointing_kwargs:
            raise ValueError(
                f"keras.remat takes no options; got gradient_checkpointing_kwargs={gradient_checkpointing_kwargs!r}"
            )
        if not self.supports_gradient_checkpointing:
            raise ValueError(
                f"gradient checkpointing needs keras.remat, which does nothing on the {BACKEND!r} Keras backend: "
                "use TensorFlow, JAX or torch"
            )
        self._set_gradient_checkpointing(True)

    def gradient_checkpointing_disable(self) -> None:
        """Keep every activation again (see `gradient_checkpointing_enable`)."""
        self._set_gradient_checkpointing(False)

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether training calls rematerialise the Transformer layers."""
        return bool(self.base_model.gradient_checkpointing)

    def _set_gradient_checkpointing(self, value: bool) -> None:
        if self.base_model.gradient_checkpointing != value:
            self.base_model.gradient_checkpointing = value
            self.train_function = self.test_function = self.predict_function = None  # traced with the old setting

    # === Calling ===
    def _check_call_inputs(self, kwargs: dict[str, Any]) -> None:
        """The encoder's input checks, run eagerly before entering the inference graph."""
        check_inputs(self.config, **{k: kwargs.get(k) for k in _CHECKED_INPUTS})

    def _dispatch(self, call: Any, kwargs: dict[str, Any]) -> Any:
        """Run `call` (a subclass's undecorated `call`) op by op, inside the caller's graph, or as this
        model's inference graph (see `graph_inference`)."""
        if not (tf_only is not None and self.graph_inference and tf_only.executing_eagerly()
                and not kwargs.get("training") and kwargs.get("cache") is None):
            return call(self, **kwargs)
        config = self.config
        # Resolve config-dependent flags now: they are part of the traced signature.
        for name, default in (("output_attentions", config.output_attentions),
                              ("output_hidden_states", config.output_hidden_states),
                              ("return_dict", config.use_return_dict)):
            if kwargs.get(name) is None:
                kwargs[name] = bool(default)
        kwargs["training"] = False
        signature = tuple(sorted((k, _signature_of(v)) for k, v in kwargs.items()))
        if signature not in self._eager_signatures:
            self._eager_signatures.add(signature)
            return call(self, **kwargs)
        self._check_call_inputs(kwargs)  # ValueErrors naming the bad id, as op by op
        if self._inference_graph is None:
            self._inference_graph = tf_only.InferenceGraph(self, call)
        return self._inference_graph(**kwargs)

    # === Weights ===
    def named_weights(self) -> dict[str, Any]:
        """Every variable by its weight-table Keras name (see `keras_weights`)."""
        return keras_weights(self)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights as numpy arrays under their PyTorch names, in PyTorch layout (tied ones left out)."""
        variables = self.named_weights()
        state = {}
        for spec in weight_specs(self.config, self._architecture()):
            if spec.keras_name is not None:
                value = ops.convert_to_numpy(variables[spec.keras_name])
                state[spec.torch_name] = value.T if spec.transpose else value
        return state

    def load_state_dict(
        self, state: Mapping[str, Any], context: str = "", ignore_mismatched_sizes: bool = False
    ) -> StateDictMatch:
        """Copy a PyTorch-named checkpoint (arrays in PyTorch layout) into the model through the weight table.

        A base-model or other-head checkpoint is accepted as transformers does: encoder weights must
        all fit (else `WeightMismatchError` lists what is missing, unexpected or mis-shaped); head
        weights left at their initialisation, or belonging to another head, give a warning. With
        `ignore_mismatched_sizes`, mis-shaped weights keep their initialisation (with a warning).
        """
        architecture = self._architecture()
        specs = weight_specs(self.config, architecture)
        match = match_state_dict(specs, state, self.config, architecture)
        if ignore_mismatched_sizes:
            match.drop_mismatched()
        match.raise_for_errors(context)
        match.warn_about_heads(architecture, context, stacklevel=4)
        variables = self.named_weights()
        by_torch = {spec.torch_name: spec for spec in specs}
        for name, value in match.tensors.items():
            spec = by_torch[name]
            if spec.keras_name is None:
                continue  # tied: the output layer reads the word embeddings
            # a copy: JAX on CPU may alias a numpy buffer, which the caller (a PyTorch state_dict) can change
            value = np.array(value, copy=True)
            variables[spec.keras_name].assign(value.T if spec.transpose else value)
        return match

    def load_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' `load_weights(file)`; given a mapping instead, `load_state_dict(mapping)` (the
        PyTorch stack's `load_weights`)."""
        if isinstance(filepath, Mapping):
            return self.load_state_dict(filepath, *args, **kwargs)
        return super().load_weights(filepath, *args, **kwargs)

    def _architecture(self) -> str:
        if self.architecture is None:
            raise TypeError(f"{type(self).__name__} is abstract: use TFXLMModel or one of the head models")
        return self.architecture

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        config: XLMConfig | None = None,
        *,
        dtype: Any = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: Any = None,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        check_finite: bool = True,
        **kwargs: Any,
    ) -> "TFXLMPreTrainedModel | tuple[TFXLMPreTrainedModel, dict[str, list]]":
        """Load a model from a directory (or Hub repository) written by us or by transformers.

        Reads config.json (unless `config` is given; `kwargs` override its fields, e.g.
        `num_labels=3`; any other keyword is a TypeError) and model.safetensors, pytorch_model.bin,
        tf_model.h5 or their shards. `dtype` is the Keras dtype policy (e.g. "mixed_float16"). As in
        transformers: `ignore_mismatched_sizes` leaves mis-shaped weights (a classifier with another
        num_labels) at their initialisation; `output_loading_info` also returns a dict of missing,
        unexpected and mismatched keys. A checkpoint holding NaN or infinite weights is a
        `NonFiniteWeightsError` naming them (such a model gives NaN outputs; `check_finite=False`
        loads it anyway, e.g. to inspect a diverged run).
        """
        from xlm import checkpoint

        if cls.architecture is None:
            raise TypeError(f"{cls.__name__} is abstract: use TFXLMModel or one of the head models")
        hub_kwargs = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        hub_kwargs = {k: v for k, v in hub_kwargs.items() if v not in (None, False)}
        directory = checkpoint.resolve_pretrained_dir(name_or_path, **hub_kwargs)
        config = checkpoint.pretrained_config(cls.__name__, directory, config, kwargs)
        model = cls(config, dtype=dtype)
        state = checkpoint.load_state_dict(directory, config, cls.architecture, check_finite=check_finite)
        match = model.load_state_dict(state, os.fspath(name_or_path), ignore_mismatched_sizes)
        return (model, match.loading_info()) if output_loading_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        saved_model: bool = False,
        version: int = 1,
        signatures: Any = None,
        max_shard_size: int | str | None = None,
        safe_serialization: bool = False,
    ) -> list[str]:
        """Write config.json and tf_model.h5 (transformers' TF layout, which its TFXLM classes read);
        with `safe_serialization`, also model.safetensors (PyTorch names). Sharded above
        `max_shard_size`. Returns the files written. The directory changes in one step, other files
        in it kept (`checkpoint.save_pretrained_directory`).

        `saved_model=True` also writes a TensorFlow SavedModel to saved_model/<version> (the layout
        TF Serving reads), as transformers' TF models do: signatures `serving_default` (int32 inputs by
        name, see `input_signature`) and `int64_serving`, unless `signatures` are given. TensorFlow only.
        """
        from xlm import checkpoint

        architecture = self._architecture()
        state = self.state_dict()
        config = copy.deepcopy(self.config)
        config.architectures = [architecture]
        formats = ["h5"] + (["safetensors"] if safe_serialization else [])
        if saved_model:
            self._check_serving_backend()

        def write(directory: str) -> list[str]:
            files = []
            for fmt in formats:
                files += checkpoint.save_state_dict(
                    state, directory, config, architecture, format=fmt, max_shard_size=max_shard_size
                )
            files = [config.save_pretrained(directory), *files]
            if saved_model:
                target = os.path.join(directory, "saved_model", str(version))
                files.append(tf_only.save_saved_model(self, target, signatures))
            return files

        return checkpoint.save_pretrained_directory(save_directory, write, formats)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: Any = None,
        max_shard_size: int | str | None = "5GB",
        create_pr: bool = False,
        safe_serialization: bool = True,
        revision: str | None = None,
        commit_description: str | None = None,
    ) -> Any:
        """Upload what `save_pretrained` writes (tf_model.h5, and model.safetensors with
        `safe_serialization`, transformers' default) to the Hub model repository `repo_id` (created if
        needed), as transformers' `push_to_hub`; needs `huggingface_hub` (see `xlm.hub.push_folder_to_hub`)."""
        from xlm.hub import push_folder_to_hub

        def save(directory: str) -> None:
            self.save_pretrained(directory, safe_serialization=safe_serialization, max_shard_size=max_shard_size)

        return push_folder_to_hub(
            save, repo_id, commit_message=commit_message or "Upload model", private=private, token=token,
            create_pr=create_pr, revision=revision, commit_description=commit_description,
            what=f"the {type(self).__name__}",
        )

    # === Keras entry points: a tokenizer's output (a dict subclass Keras does not recognise) as a dict ===
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*map(_plain_mapping, args), **kwargs)

    def fit(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        return super().fit(_plain_mapping(x), *args, **kwargs)

    def evaluate(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        return super().evaluate(_plain_mapping(x), *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' `predict`, returning the model's output class (as transformers' TF models do) with
        numpy arrays: `out.logits`, `out["logits"]` and `out[0]` all work."""
        result = super().predict(_plain_mapping(x), *args, **kwargs)
        output_class = getattr(self, "_predict_output_class", None)
        return output_class(**result) if output_class is not None and isinstance(result, dict) else result

    # === Serving (TensorFlow) ===
    def _check_serving_backend(self) -> None:
        if tf_only is None:
            raise RuntimeError(
                f"the serving signature (SavedModel export) needs Keras on TensorFlow; KERAS_BACKEND is {BACKEND!r}"
            )

    @property
    def input_signature(self) -> dict[str, Any]:
        """Serving inputs, as transformers' TF models: int32 `tf.TensorSpec`s named input_ids, attention_mask,
        langs (when the model has language embeddings) and token_type_ids (what the tokenizer returns), with
        any batch and sequence length. TensorFlow only (SavedModel export)."""
        self._check_serving_backend()
        names = ["input_ids", "attention_mask"] + (["langs"] if self.config.uses_lang_embeddings else [])
        return tf_only.serving_signature([*names, "token_type_ids"], self.input_rank)

    def serving(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The SavedModel serving function (transformers' `serving`): the model's outputs on a dict of
        inputs, as a dict of tensors (see `serving_output`), traced once per input signature."""
        self._check_serving_backend()
        return tf_only.serving_function(self)(dict(inputs))

    def serving_output(self, output: Any) -> dict[str, Any]:
        """The outputs a signature returns: the tensor fields of `output` (hidden states and attentions,
        when the config asks for them, stacked into one tensor each)."""
        if not isinstance(output, Mapping):
            output = {f"output_{i}": value for i, value in enumerate(output)}
        served = {}
        for key, value in output.items():
            if isinstance(value, (tuple, list)):
                value = ops.stack(value)
            if value is not None:
                served[key] = value
        return served

    def _trackable_children(self, save_type: str = "checkpoint", **kwargs: Any) -> dict[str, Any]:
        """TensorFlow's SavedModel hook: `tf.saved_model.save(model, dir)` finds the serving function under
        the name of a default signature, so the SavedModel gets `serving_default` (int32 inputs by name)."""
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel" and tf_only is not None:
            children.setdefault(tf_only.DEFAULT_SIGNATURE_ATTR, tf_only.serving_concrete_function(self))
        return children

    def export(self, filepath: Any, format: str = "tf_saved_model", verbose: Any = None,
               input_signature: Any = None, **kwargs: Any) -> Any:
        """Keras' `export` (a SavedModel with a `serve` endpoint and a `serving_default` signature);
        without `input_signature`, the model's own `input_signature` (int32 tensors named input_ids,
        attention_mask, langs, token_type_ids, so that TF Serving requests name them)."""
        if input_signature is None:
            input_signature = [self.input_signature]
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    # === Data ===
    def prepare_tf_dataset(
        self,
        dataset: Any,
        batch_size: int = 8,
        shuffle: bool = True,
        tokenizer: Any = None,
        collate_fn: Any = None,
        collate_fn_args: dict[str, Any] | None = None,
        drop_remainder: bool | None = None,
        prefetch: bool = True,
    ) -> Any:
        """A `tf.data.Dataset` of a Hugging Face `datasets.Dataset`, ready for `fit` (transformers' TF method).

        Batches are padded by `tokenizer` (`xlm.DataCollatorWithPadding`), stacked without one
        (`xlm.DefaultDataCollator`: equal lengths needed), or made by `collate_fn(examples, **collate_fn_args)`.
        The batch keys this model's `call` takes become the inputs, and its label keys (`label` and `label_ids`
        count as `labels`) become `y`. `fit` with no compiled loss hands `y` to the model's own loss.
        `drop_remainder` defaults to `shuffle`.
        """
        from xlm.data_collator import DataCollatorWithPadding, DefaultDataCollator

        if not hasattr(dataset, "to_tf_dataset"):
            raise TypeError(
                f"prepare_tf_dataset needs a Hugging Face datasets.Dataset (pip install datasets), "
                f"got {type(dataset).__name__}"
            )
        if collate_fn is None:
            if tokenizer is None:
                collate_fn = DefaultDataCollator(return_tensors="np")
            else:
                collate_fn = DataCollatorWithPadding(tokenizer, return_tensors="np")
        collate_fn_args = collate_fn_args or {}
        if len(dataset) == 0:
            raise ValueError("prepare_tf_dataset got an empty dataset")
        # the keys a batch will have (transformers reads them from a private helper of datasets); a collator
        # that can't batch these examples fails here rather than inside the tf.data pipeline
        keys = list(collate_fn([dataset[i] for i in range(min(batch_size, len(dataset)))], **collate_fn_args))
        inputs = set(inspect.signature(self.call).parameters) - set(self.label_names)
        features = [key for key in keys if key in inputs]
        labels = [key for key in keys if key in self.label_names]
        if not features:
            raise ValueError(
                f"none of the dataset's batch keys {keys} is an input of {type(self).__name__} "
                f"({', '.join(sorted(inputs & {'input_ids', 'attention_mask', 'langs', 'token_type_ids'}))} ...)"
            )
        return dataset.to_tf_dataset(
            columns=features[0] if len(features) == 1 else features,
            label_cols=(labels[0] if len(labels) == 1 else labels) or None,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_remainder=shuffle if drop_remainder is None else drop_remainder,
            collate_fn=collate_fn,
            collate_fn_args=collate_fn_args,
            prefetch=prefetch,
        )

    # === Keras training hooks ===
    def _labels_into_inputs(self, data: Any) -> Any:
        """With no compiled loss, move `y` into the inputs as the model's label arguments."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None or self._compile_loss is not None or not self.label_names:
            return data
        self._refuse_sample_weight(sample_weight)  # Keras drops it from (x, None, sample_weight)
        x = dict(x) if isinstance(x, Mapping) else {"input_ids": x}
        if isinstance(y, Mapping):
            x.update(y)
        elif isinstance(y, (list, tuple)):
            x.update(zip(self.label_names, y))
        else:
            x[self.label_names[0]] = y
        return keras.utils.pack_x_y_sample_weight(x, None, sample_weight)

    def _refuse_sample_weight(self, sample_weight: Any) -> None:
        if sample_weight is not None:
            raise ValueError(
                f"sample_weight / class_weight need a compiled Keras loss: {type(self).__name__}'s own loss is "
                "already a mean over its labels. Use compile(loss=...) and give the labels as y"
            )

    # Keras' JAX trainer passes the variables' state first: step(state, data); the others step(data).
    def train_step(self, *state_and_data: Any) -> Any:
        *state, data = state_and_data
        return super().train_step(*state, self._labels_into_inputs(data))

    def test_step(self, *state_and_data: Any) -> Any:
        *state, data = state_and_data
        return super().test_step(*state, self._labels_into_inputs(data))

    def predict_step(self, *state_and_data: Any) -> Any:
        result = super().predict_step(*state_and_data)
        outputs, *new_state = result if BACKEND == "jax" else (result,)
        if not isinstance(outputs, ModelOutput):
            return result
        # tf.function cannot return our output classes (it rebuilds mappings from a generator): a
        # dict, which `predict` turns back into this class
        self._predict_output_class = type(outputs)
        return (dict(outputs), *new_state) if BACKEND == "jax" else dict(outputs)

    @staticmethod
    def _prediction(outputs: Any) -> Any:
        """What a compiled Keras loss or metric sees: the outputs without loss, hidden states and attentions."""
        if not isinstance(outputs, ModelOutput):
            return outputs
        values = [v for k, v in outputs.items() if k not in ("loss", "hidden_states", "attentions")]
        return values[0] if len(values) == 1 else tuple(values)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):  # noqa: D102
        if self._compile_loss is None and isinstance(y_pred, ModelOutput):
            self._refuse_sample_weight(sample_weight)
            loss = y_pred.get("loss")
            if loss is None:
                raise ValueError(
                    f"{type(self).__name__} computed no loss: give the labels ({', '.join(self.label_names)}) "
                    "in the inputs or as y, or compile(loss=...)"
                )
            for extra in self.losses:
                loss = loss + ops.cast(ops.sum(extra), loss.dtype)
            # As Keras does for its own losses: divide by the replica count under tf.distribute
            # (the replicas' gradients are summed).
            replicas = tf_only.replicas_in_sync() if tf_only is not None else 1
            return loss / replicas if replicas > 1 else loss
        return super().compute_loss(x, y, self._prediction(y_pred), sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):  # noqa: D102
        if y is None and self._compile_loss is None and isinstance(x, Mapping):
            # the model's own loss read the labels from the inputs: the compiled metrics see them as y
            labels = [x[name] for name in self.label_names if name in x]
            if labels:
                y = labels[0] if len(labels) == 1 else tuple(labels)
        return super().compute_metrics(x, y, self._prediction(y_pred), sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMModel(TFXLMPreTrainedModel):
    """The XLM Transformer encoder: returns the final hidden states (batch, seq, emb_dim).

    Args:
        config: the model's `XLMConfig`.
        **kwargs: Keras model arguments (name, dtype).

    Example:
        >>> from xlm import XLMConfig
        >>> from xlm.tf_backend import TFXLMModel
        >>> model = TFXLMModel(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 1]])).last_hidden_state.shape
        TensorShape([1, 4, 32])
    """

    architecture = "XLMModel"

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> BaseModelOutput | tuple:
        """Encode a batch (see `TFXLMMainLayer.call` for the arguments)."""
        return self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, training=training,
        )
