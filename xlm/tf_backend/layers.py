"""Keras 3 building blocks of XLM: embeddings, attention, feed-forward, output and pooling layers.

Every layer creates its variables in `build()` from the config alone (no input shape needed), and
each variable sits under the Keras layer names of the weight table (`xlm.weights`): a layer named
`q_lin` inside `attentions_0` inside `transformer` holds `transformer/attentions_0/q_lin/kernel`.
Under mixed precision, layer norms, softmaxes and losses run in float32.

The layers run on every Keras backend through `keras.ops`; where TensorFlow has a faster path
(`xlm.tf_backend.tensorflow_only`), it is taken on that backend only.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from xlm.config import XLMConfig
from xlm.tf_backend.backend import BACKEND, tf_only, values_readable
from xlm.weights import asm_cluster_sizes

ops = keras.ops


# --- helpers ------------------------------------------------------------------------------------


def normal_initializer(std: float) -> Any:
    """N(0, std²), the initialisation of every XLM Linear and Embedding weight."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=std)


def replace_variable(layer: Any, variable: Any, values: np.ndarray) -> Any:
    """A new variable of `layer` holding `values` (another shape) in place of `variable`: same name,
    trainability and dtype; Keras variables can't change shape."""
    locked = layer._tracker.locked
    layer._untrack_variable(variable)
    layer._tracker.unlock()
    try:
        new = layer.add_weight(
            name=variable.name, shape=values.shape, initializer="zeros", dtype=variable.dtype,
            trainable=variable.trainable, autocast=variable._autocast,
        )
    finally:
        if locked:
            layer._tracker.lock()
    new.assign(values)
    return new


def float32_if_half(dtype_policy: Any) -> Any:
    """The policy for numerically sensitive layers: float32 when the model computes in half precision."""
    if keras.backend.standardize_dtype(dtype_policy.compute_dtype) in ("float16", "bfloat16"):
        return "float32"
    return dtype_policy


def matmul_transpose_b(a: Any, b: Any) -> Any:
    """a @ bᵀ over the last two axes (b may be a 2-D table)."""
    if tf_only is not None:
        return tf_only.matmul_transpose_b(a, b)
    if len(a.shape) > 2 and len(b.shape) == 2:
        return matmul_2d(a, ops.transpose(b))
    return ops.matmul(a, ops.swapaxes(b, -1, -2))


def matmul_2d(x: Any, kernel: Any) -> Any:
    """(..., in) @ kernel (in, out) as one 2-D matmul: XLA on CPU runs a dot with two free dimensions on the
    left about 1.6× slower than the same dot flattened (8 × 128 × 512 by 512 × 2048 in JAX: 16 ms against 10)."""
    leading = tuple(ops.shape(x)[:-1])
    flat = ops.matmul(ops.reshape(x, (-1, ops.shape(x)[-1])), kernel)
    return ops.reshape(flat, leading + (ops.shape(kernel)[-1],))


def gather_positions(x: Any, index: Any) -> Any:
    """x[b, index[b]] for x (batch, seq, ...): index (batch,) gives (batch, ...), (batch, k) gives (batch, k, ...)."""
    index = ops.cast(index, "int32")
    single = len(index.shape) == 1
    if single:
        index = index[:, None]
    trailing = tuple(x.shape[2:])
    expanded = ops.reshape(index, tuple(ops.shape(index)) + (1,) * len(trailing))
    picked = ops.take_along_axis(x, ops.broadcast_to(expanded, tuple(ops.shape(index)) + trailing), axis=1)
    return picked[:, 0] if single else picked


def fused_attention_available() -> bool:
    """Whether `keras.ops.dot_product_attention` is the faster attention here: on torch (SDPA, with fused CPU
    and GPU kernels) and on JAX on a GPU or TPU. On JAX's CPU it is XLA's plain attention with transposes,
    slower than the explicit path (a 6-layer training step: 1.75 s against 1.48 s); TensorFlow has none."""
    if BACKEND == "torch":
        return True
    if BACKEND == "jax":
        import jax

        return jax.default_backend() != "cpu"
    return False


class TFXLMDense(keras.layers.Dense):
    """keras.layers.Dense computing (..., in) @ kernel as one 2-D matmul (`matmul_2d`; on TensorFlow
    `tf_only.dense_matmul`, which also skips `tf.tensordot`'s eager overhead). LoRA and quantized layers
    take Keras' own path."""

    def call(self, inputs: Any, training: Any = None) -> Any:
        if self.lora_enabled or self.quantization_mode is not None:
            return super().call(inputs, training=training)
        if tf_only is not None:
            return tf_only.dense_matmul(inputs, self.kernel, self.bias, self.units)
        outputs = matmul_2d(inputs, ops.cast(self.kernel, inputs.dtype))
        return outputs + ops.cast(self.bias, outputs.dtype) if self.bias is not None else outputs


class TFXLMDropout(keras.layers.Dropout):
    """keras.layers.Dropout; on TensorFlow, masks from Philox4x32-10 bits (`tf_only.philox_dropout`): an
    element is kept when its uint32 draw is at least round(rate · 2³²), and the mask is the same eagerly, in
    a graph and under XLA.

    Keras' own dropout on TensorFlow uses its default generator, which under XLA on CPU (ThreeFry) is about
    20× slower than Philox, and draws floats, whose bits differ between XLA and TensorFlow's kernels. On JAX
    and torch, Keras' dropout runs (one new seed per call from the layer's `SeedGenerator` there too).
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        if noise_shape is not None:
            raise ValueError(f"TFXLMDropout draws one mask element per input element; noise_shape={noise_shape!r} "
                             "is not supported")
        super().__init__(rate, seed=seed, **kwargs)

    def call(self, inputs: Any, training: Any = False) -> Any:
        if not training or self.rate == 0:
            return inputs
        if tf_only is None:
            if self.rate >= 1:
                return ops.zeros_like(inputs)
            return super().call(inputs, training=training)
        return tf_only.philox_dropout(inputs, self.rate, self.seed_generator.next())


def dense(units: int, std: float, name: str, dtype: Any, use_bias: bool = True) -> TFXLMDense:
    """A Dense layer initialised like XLM's nn.Linear (normal weights, zero bias)."""
    return TFXLMDense(
        units, use_bias=use_bias, kernel_initializer=normal_initializer(std), bias_initializer="zeros",
        name=name, dtype=dtype,
    )


def layer_norm(eps: float, name: str, dtype: Any) -> Any:
    """A LayerNorm (gamma, beta) that normalises in float32 even under mixed precision."""
    return keras.layers.LayerNormalization(epsilon=eps, name=name, dtype=float32_if_half(dtype))


def cross_entropy(logits: Any, labels: Any, ignore_index: int | None = -100) -> Any:
    """Mean cross entropy over the last axis, skipping `ignore_index` labels (PyTorch's CrossEntropyLoss)."""
    logits = ops.cast(ops.reshape(logits, (-1, ops.shape(logits)[-1])), "float32")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    if ignore_index is None:
        return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    keep = ops.not_equal(labels, ignore_index)
    safe_labels = ops.where(keep, labels, ops.zeros_like(labels))
    losses = ops.sparse_categorical_crossentropy(safe_labels, logits, from_logits=True)
    return mean_over_kept(losses, keep)


def mean_over_kept(values: Any, keep: Any) -> Any:
    """The mean of `values` where `keep`; as PyTorch's losses, NaN when nothing is kept, but then with
    a zero gradient, not a NaN one (a batch with no label must not wreck the weights)."""
    keep = ops.cast(keep, "float32")
    count = ops.sum(keep)
    mean = ops.sum(values * keep) / ops.maximum(count, 1.0)
    return mean + ops.stop_gradient(ops.where(count > 0, 0.0, float("nan")))


def nll_of_log_probs(log_probs: Any, labels: Any, ignore_index: int = -100) -> Any:
    """Mean negative log-likelihood of `labels` under `log_probs`, skipping `ignore_index`."""
    log_probs = ops.cast(ops.reshape(log_probs, (-1, ops.shape(log_probs)[-1])), "float32")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    keep = ops.not_equal(labels, ignore_index)
    safe_labels = ops.where(keep, labels, ops.zeros_like(labels))
    picked = ops.take_along_axis(log_probs, safe_labels[:, None], axis=1)[:, 0]
    return -mean_over_kept(picked, keep)


def lm_cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean cross entropy of (..., vocab) logits against (...) labels, -100 ignored (not shifted).

    Where values can be read (see `check_lm_labels`), a label outside [0, vocab) other than -100 is a
    ValueError (as in the PyTorch stack).
    """
    check_lm_labels(labels, logits.shape[-1])
    return cross_entropy(logits, labels)


def check_lm_labels(labels: Any, vocab: int) -> None:
    """A ValueError for a label outside [0, vocab) other than -100 (as in the PyTorch stack), wherever the
    labels' values can be read: eagerly, not in a traced graph or under `jit` (there such a label gives a
    NaN or meaningless loss)."""
    if values_readable(labels):
        values = np.asarray(ops.convert_to_numpy(labels))
        bad = values[((values < 0) & (values != -100)) | (values >= vocab)]
        if bad.size:
            raise ValueError(f"labels contains id {bad.flat[0]}, outside [0, {vocab}) and not -100 (ignored)")


# --- embeddings ---------------------------------------------------------------------------------


class TFXLMEmbedding(keras.layers.Layer):
    """A lookup table (nn.Embedding): `weight_name` is the variable's name in the weight table.

    Args:
        num_embeddings: rows of the table.
        dim: embedding size.
        std: standard deviation of the normal initialisation.
        weight_name: "embeddings" (positions, languages) or "weight" (words, as transformers names it).
        padding_idx: a row initialised to zeros, as nn.Embedding(padding_idx=...) does.
        table: fixed values (the sinusoidal position table); the variable is then not trainable.
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        std: float,
        weight_name: str = "embeddings",
        padding_idx: int | None = None,
        table: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.std = std
        self.weight_name = weight_name
        self.padding_idx = padding_idx
        self.table = table

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        if self.table is not None:
            initializer = keras.initializers.Constant(self.table)
        else:
            normal = normal_initializer(self.std)
            padding_idx = self.padding_idx

            def initializer(shape, dtype=None):
                values = normal(shape, dtype=dtype)
                if padding_idx is None:
                    return values
                keep = ops.not_equal(ops.arange(shape[0]), padding_idx)[:, None]
                return ops.where(keep, values, ops.zeros_like(values))

        # autocast=False: look rows up in the float32 table and cast the rows, not the whole table.
        self.weight = self.add_weight(
            name=self.weight_name,
            shape=(self.num_embeddings, self.dim),
            initializer=initializer,
            trainable=self.table is None,
            autocast=False,
        )

    def call(self, ids: Any) -> Any:
        return ops.cast(ops.take(self.weight, ids, axis=0), self.compute_dtype)

    def set_table(self, values: np.ndarray) -> None:
        """Replace the table by `values`, of any row count (`resize_token_embeddings`)."""
        self.num_embeddings = int(values.shape[0])
        self.weight = replace_variable(self, self.weight, values)

    def linear(self, hidden_states: Any) -> Any:
        """hidden_states @ tableᵀ: the tied output projection of the LM head."""
        return matmul_transpose_b(hidden_states, ops.cast(self.weight, hidden_states.dtype))


# --- encoder layers -----------------------------------------------------------------------------


class TFXLMMultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with an optional key/value cache for incremental decoding.

    Where `fused_attention_available()` (torch; JAX on a GPU or TPU), runs `keras.ops.dot_product_attention`
    (flash attention where the GPU has it) unless attention weights or a head mask are asked for, attention
    dropout is on, or `attn_implementation` is "eager" — as the PyTorch twin runs SDPA. The explicit path (always taken on
    TensorFlow and JAX's CPU) scales q by 1/sqrt(head_dim) before q·kᵀ, fills masked scores with float32's minimum and
    takes the softmax in float32 (a fully masked row gets uniform weights, never NaN, in any dtype), as
    the reference does; `head_mask` multiplies the probabilities after dropout.

    Args:
        config: the model config (emb_dim, n_heads, attention_dropout, init_std).
        layer_idx: the layer's index, its slot in an incremental-decoding cache.
    """

    def __init__(self, config: XLMConfig, layer_idx: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer_idx = layer_idx
        self.dim = config.emb_dim
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.attention_dropout = config.attention_dropout
        self.attn_implementation = "fused" if fused_attention_available() else "eager"
        self.q_lin = dense(self.dim, config.init_std, "q_lin", self.dtype_policy)
        self.k_lin = dense(self.dim, config.init_std, "k_lin", self.dtype_policy)
        self.v_lin = dense(self.dim, config.init_std, "v_lin", self.dtype_policy)
        self.out_lin = dense(self.dim, config.init_std, "out_lin", self.dtype_policy)
        self.dropout = TFXLMDropout(config.attention_dropout, dtype=self.dtype_policy)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        for lin in (self.q_lin, self.k_lin, self.v_lin, self.out_lin):
            lin.build((None, None, self.dim))

    def _split_heads(self, x: Any) -> Any:
        return ops.reshape(x, (ops.shape(x)[0], -1, self.n_heads, self.head_dim))  # (bs, len, n_heads, head_dim)

    def call(
        self,
        hidden_states: Any,
        attn_mask: Any,
        cache: dict | None = None,
        head_mask: Any = None,
        output_attentions: bool = False,
        training: bool = False,
    ) -> tuple[Any, Any]:
        """Attend over `hidden_states` (bs, qlen, dim).

        `attn_mask` is nonzero where a query may attend a key: (bs, klen), or (bs | 1, qlen, klen)
        for causal attention. (Keras reserves the argument name `mask`.) Returns the output
        (bs, qlen, dim) and the attention probabilities (or None).
        """
        batch = ops.shape(hidden_states)[0]
        q = self._split_heads(self.q_lin(hidden_states))
        k = self._split_heads(self.k_lin(hidden_states))
        v = self._split_heads(self.v_lin(hidden_states))
        if cache is not None:
            if self.layer_idx in cache:
                k_past, v_past = cache[self.layer_idx]
                k = ops.concatenate([k_past, k], axis=1)
                v = ops.concatenate([v_past, v], axis=1)
            cache[self.layer_idx] = (k, v)
        # q, k, v: (bs, qlen | klen, n_heads, head_dim)
        if len(attn_mask.shape) == 3:
            keep = ops.expand_dims(attn_mask, 1)  # (bs | 1, 1, qlen, klen)
        else:
            keep = attn_mask[:, None, None, :]  # (bs, 1, 1, klen)
        keep = ops.not_equal(keep, 0)

        dropout_on = training and self.attention_dropout > 0
        if self.attn_implementation == "fused" and not (output_attentions or head_mask is not None or dropout_on):
            context = ops.dot_product_attention(q, k, v, mask=keep, scale=1 / math.sqrt(self.head_dim))
            return self.out_lin(ops.reshape(context, (batch, -1, self.dim))), None

        q, k, v = (ops.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))  # (bs, n_heads, len, head_dim)
        q = q / math.sqrt(self.head_dim)
        scores = ops.cast(matmul_transpose_b(q, k), "float32")  # (bs, n_heads, qlen, klen)
        scores = ops.where(keep, scores, np.finfo(np.float32).min)
        weights = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        weights = self.dropout(weights, training=training)
        if head_mask is not None:
            weights = weights * ops.cast(head_mask, weights.dtype)

        context = ops.matmul(weights, v)  # (bs, n_heads, qlen, head_dim)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, -1, self.dim))
        return self.out_lin(context), (weights if output_attentions else None)


def gelu(x: Any) -> Any:
    """The exact GELU in its erf form, 0.5 · x · (1 + erf(x / √2)), as PyTorch's F.gelu and transformers' TF XLM.

    Keras' exact GELU goes through erfc, whose XLA expansion made the 8 × 128 fit step 23 ms slower.
    """
    return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))


class TFXLMTransformerFFN(keras.layers.Layer):
    """Position-wise feed-forward block: lin1 (dim → 4·dim), GELU (erf) or ReLU, lin2, dropout."""

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = config.emb_dim
        self.gelu_activation = config.gelu_activation
        self.lin1 = dense(4 * config.emb_dim, config.init_std, "lin1", self.dtype_policy)
        self.lin2 = dense(config.emb_dim, config.init_std, "lin2", self.dtype_policy)
        self.dropout = TFXLMDropout(config.dropout, dtype=self.dtype_policy)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.lin1.build((None, None, self.dim))
        self.lin2.build((None, None, 4 * self.dim))

    def call(self, x: Any, training: bool = False) -> Any:
        x = self.lin1(x)
        x = gelu(x) if self.gelu_activation else ops.relu(x)
        x = self.lin2(x)
        return self.dropout(x, training=training)


# --- LM head ------------------------------------------------------------------------------------


class _Untracked:
    """Holds a layer without Keras tracking it as a sub-layer (the LM head borrows the embeddings)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer


class TFXLMPredLayer(keras.layers.Layer):
    """Output layer: logits through the tied word embeddings plus a bias, or an adaptive softmax.

    Without asm, the logits are hidden @ Eᵀ + bias (E: the word embeddings, borrowed from the
    encoder, not owned); with asm, the adaptive-softmax log-probabilities over the whole vocabulary
    (PyTorch's AdaptiveLogSoftmaxWithLoss with head_bias=True: `head`, `tail_k_0`,
    `tail_k_1`), and the loss is the adaptive-softmax loss over labels ≠ -100.
    """

    def __init__(self, config: XLMConfig, input_embeddings: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asm = config.asm
        self.n_words = config.vocab_size
        self.dim = config.emb_dim
        if not self.asm:
            if input_embeddings is None:
                raise ValueError("TFXLMPredLayer without asm needs the word-embedding layer to tie to")
            self._tied = _Untracked(input_embeddings)
        else:
            self.cutoffs = list(config.asm_cutoffs) + [config.vocab_size]
            self.shortlist_size = config.asm_cutoffs[0]
            n_clusters = len(config.asm_cutoffs)
            self.head = dense(self.shortlist_size + n_clusters, config.init_std, "head", self.dtype_policy)
            # Cluster k: tail_k_0 (dim -> proj) then tail_k_1 (proj -> words), no biases.
            self.tail_projections, self.tail_outputs = [], []
            for k, (proj, words) in enumerate(asm_cluster_sizes(config)):
                self.tail_projections.append(
                    dense(proj, config.init_std, f"tail_{k}_0", self.dtype_policy, use_bias=False)
                )
                self.tail_outputs.append(
                    dense(words, config.init_std, f"tail_{k}_1", self.dtype_policy, use_bias=False)
                )

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        if not self.asm:
            self.bias = self.add_weight(name="bias", shape=(self.n_words,), initializer="zeros")
            return
        self.head.build((None, self.dim))
        for project, output in zip(self.tail_projections, self.tail_outputs):
            project.build((None, self.dim))
            output.build((None, project.units))

    def set_vocab_size(self, n_words: int) -> None:
        """Follow resized word embeddings: the bias is cut, or padded with zeros for new words."""
        bias = ops.convert_to_numpy(self.bias)
        values = np.zeros(n_words, dtype=bias.dtype)
        values[: min(n_words, len(bias))] = bias[:n_words]
        self.n_words = n_words
        self.bias = replace_variable(self, self.bias, values)

    def log_prob(self, hidden_states: Any) -> Any:
        """Adaptive-softmax log-probabilities (..., vocab) of hidden states (..., dim), in float32."""
        shape = ops.shape(hidden_states)
        x = ops.reshape(hidden_states, (-1, self.dim))
        head_logprob = ops.log_softmax(ops.cast(self.head(x), "float32"), axis=-1)
        parts = [head_logprob[:, : self.shortlist_size]]
        for i, (project, output) in enumerate(zip(self.tail_projections, self.tail_outputs)):
            cluster_logprob = ops.log_softmax(ops.cast(output(project(x)), "float32"), axis=-1)
            cluster_index = self.shortlist_size + i
            parts.append(cluster_logprob + head_logprob[:, cluster_index : cluster_index + 1])
        return ops.reshape(ops.concatenate(parts, axis=-1), tuple(shape[:-1]) + (self.n_words,))

    def call(self, hidden_states: Any, labels: Any = None, return_logits: bool = True) -> tuple[Any, Any]:
        """Return (logits, loss); loss is None without labels, logits None with `return_logits=False`
        (the loss alone, computed on the labelled positions only)."""
        if not return_logits and labels is None:
            raise ValueError("return_logits=False needs labels: the loss is all it returns")
        if labels is not None:
            expected, got = tuple(hidden_states.shape[:-1]), tuple(labels.shape)
            # in a graph, a dimension may be unknown (None) until run time
            clash = any(a is not None and b is not None and a != b for a, b in zip(got, expected))
            if len(got) != len(expected) or clash:
                raise ValueError(
                    f"labels has shape {got}; expected {expected}, one label per input position (-100 where "
                    "there is none)"
                )
        if self.asm:
            if not return_logits and tf_only is not None:
                picked, targets = tf_only.labelled_rows(hidden_states, labels, self.dim)
                return None, nll_of_log_probs(self.log_prob(picked), targets)
            log_probs = self.log_prob(hidden_states)
            loss = nll_of_log_probs(log_probs, labels) if labels is not None else None
            return (log_probs if return_logits else None), loss
        bias = ops.cast(self.bias, hidden_states.dtype)
        logits = self._tied.layer.linear(hidden_states) + bias if return_logits else None
        if labels is None:
            return logits, None
        if tf_only is None or (tf_only.executing_eagerly() and return_logits):
            scores = logits if logits is not None else self._tied.layer.linear(hidden_states) + bias
            return logits, lm_cross_entropy(scores, labels)
        if tf_only.in_xla_compilation():
            # XLA would pad the labelled rows below to all rows, and it merges the loss's projection with the
            # logits' (the same product), so the logits cost nothing more
            table = ops.cast(self._tied.layer.weight, hidden_states.dtype)
            flat, flat_labels = ops.reshape(hidden_states, (-1, self.dim)), ops.reshape(labels, (-1,))
            return logits, tf_only.linear_cross_entropy(flat, table, bias, flat_labels)
        # In a TensorFlow graph, the loss projects the labelled rows again, on their own. When nothing reads
        # the logits (model.fit without metrics), TensorFlow prunes the full projection, and with masked-LM
        # labels (15 % of the tokens) the head's softmax and gradient products shrink to 15 %.
        check_lm_labels(labels, self.n_words)
        picked, targets = tf_only.labelled_rows(hidden_states, labels, self.dim)
        picked_logits = self._tied.layer.linear(picked) + bias
        return logits, cross_entropy(picked_logits, targets, ignore_index=None)


# --- classification heads -----------------------------------------------------------------------


class TFXLMSequenceSummary(keras.layers.Layer):
    """One vector per sequence: pick (first / last / mean / cls_index), dropout, projection, activation.

    The projection `summary` maps to num_labels when `summary_proj_to_labels` (else to the hidden
    size); `summary_activation` "tanh" adds a tanh.
    """

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary_type = config.summary_type
        self.dim = config.emb_dim
        self.summary = None
        if config.summary_use_proj:
            if config.summary_proj_to_labels and config.num_labels > 0:
                num_classes = config.num_labels
            else:
                num_classes = config.emb_dim
            self.summary = dense(num_classes, config.init_std, "summary", self.dtype_policy)
        self.use_tanh = config.summary_activation == "tanh"
        self.first_dropout = None
        if config.summary_first_dropout and config.summary_first_dropout > 0:
            self.first_dropout = TFXLMDropout(config.summary_first_dropout, dtype=self.dtype_policy)
        last_dropout = getattr(config, "summary_last_dropout", 0.0) or 0.0
        self.last_dropout = TFXLMDropout(last_dropout, dtype=self.dtype_policy) if last_dropout > 0 else None

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        if self.summary is not None:
            self.summary.build((None, self.dim))

    def call(self, hidden_states: Any, cls_index: Any = None, training: bool = False) -> Any:
        if self.summary_type == "last":
            output = hidden_states[:, -1]
        elif self.summary_type == "first":
            output = hidden_states[:, 0]
        elif self.summary_type == "mean":
            output = ops.mean(hidden_states, axis=1)
        else:  # cls_index; the last token when not given
            if cls_index is None:
                output = hidden_states[:, -1]
            else:
                output = gather_positions(hidden_states, cls_index)
        if self.first_dropout is not None:
            output = self.first_dropout(output, training=training)
        if self.summary is not None:
            output = self.summary(output)
        if self.use_tanh:
            output = ops.tanh(output)
        if self.last_dropout is not None:
            output = self.last_dropout(output, training=training)
        return output


# --- SQuAD head ---------------------------------------------------------------------------------


def _apply_p_mask(logits: Any, p_mask: Any) -> Any:
    """x·(1-p) - 1e30·p in float32 (the logits are float32 here, so the fill never overflows)."""
    if p_mask is None:
        return logits
    p_mask = ops.cast(p_mask, "float32")
    return logits * (1.0 - p_mask) - 1e30 * p_mask


class TFXLMPoolerStartLogits(keras.layers.Layer):
    """SQuAD start logits (float32) from the final hidden states."""

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_size = config.emb_dim
        self.dense = dense(1, config.init_std, "dense", self.dtype_policy)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.dense.build((None, None, self.hidden_size))

    def call(self, hidden_states: Any, p_mask: Any = None) -> Any:
        x = ops.cast(ops.squeeze(self.dense(hidden_states), -1), "float32")
        return _apply_p_mask(x, p_mask)


class TFXLMPoolerEndLogits(keras.layers.Layer):
    """SQuAD end logits (float32) given the start token's hidden state (or a start position)."""

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_size = config.emb_dim
        self.dense_0 = dense(config.emb_dim, config.init_std, "dense_0", self.dtype_policy)
        self.LayerNorm = layer_norm(config.layer_norm_eps, "LayerNorm", self.dtype_policy)
        self.dense_1 = dense(1, config.init_std, "dense_1", self.dtype_policy)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.dense_0.build((None, None, 2 * self.hidden_size))
        self.LayerNorm.build((None, None, self.hidden_size))
        self.dense_1.build((None, None, self.hidden_size))

    def call(self, hidden_states: Any, start_states: Any = None, start_positions: Any = None, p_mask: Any = None) -> Any:
        if start_positions is not None:
            slen = ops.shape(hidden_states)[-2]
            start = gather_positions(hidden_states, start_positions)  # (bs, hsz)
            start_states = ops.repeat(start[:, None, :], slen, axis=1)  # (bs, slen, hsz)
        elif start_states is None:
            raise ValueError("TFXLMPoolerEndLogits needs start_states or start_positions")
        x = self.dense_0(ops.concatenate([hidden_states, start_states], axis=-1))
        x = ops.tanh(x)
        x = ops.cast(self.LayerNorm(x), self.compute_dtype)
        x = ops.cast(ops.squeeze(self.dense_1(x), -1), "float32")
        return _apply_p_mask(x, p_mask)


class TFXLMPoolerAnswerClass(keras.layers.Layer):
    """SQuAD 2.0 answerability logit (float32) from the start and CLS hidden states."""

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_size = config.emb_dim
        self.dense_0 = dense(config.emb_dim, config.init_std, "dense_0", self.dtype_policy)
        self.dense_1 = dense(1, config.init_std, "dense_1", self.dtype_policy, use_bias=False)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.dense_0.build((None, 2 * self.hidden_size))
        self.dense_1.build((None, self.hidden_size))

    def call(self, hidden_states: Any, start_states: Any = None, start_positions: Any = None, cls_index: Any = None) -> Any:
        if start_positions is not None:
            start_states = gather_positions(hidden_states, start_positions)  # (bs, hsz)
        elif start_states is None:
            raise ValueError("TFXLMPoolerAnswerClass needs start_states or start_positions")
        if cls_index is not None:
            cls_token_state = gather_positions(hidden_states, cls_index)
        else:
            cls_token_state = hidden_states[:, -1, :]
        x = self.dense_0(ops.concatenate([ops.cast(start_states, self.compute_dtype), cls_token_state], axis=-1))
        x = ops.tanh(x)
        return ops.cast(ops.squeeze(self.dense_1(x), -1), "float32")


class TFXLMSQuADHead(keras.layers.Layer):
    """SQuAD head (after XLNet): span-start and span-end scores, beam search at inference, answerability.

    With start and end positions it returns the loss: mean of the start and end cross entropies
    (positions outside [0, seq) are ignored, as in the simple QA head), plus half the binary
    cross entropy of `is_impossible` when both it and `cls_index` are given. Otherwise it returns
    the top `start_n_top` starts, the top `end_n_top` ends for each, and the answer-class logits
    (the "log probs" are softmax probabilities, as in transformers).
    """

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_n_top = config.start_n_top
        self.end_n_top = config.end_n_top
        self.start_logits = TFXLMPoolerStartLogits(config, name="start_logits", dtype=self.dtype_policy)
        self.end_logits = TFXLMPoolerEndLogits(config, name="end_logits", dtype=self.dtype_policy)
        self.answer_class = TFXLMPoolerAnswerClass(config, name="answer_class", dtype=self.dtype_policy)

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.start_logits.build()
        self.end_logits.build()
        self.answer_class.build()

    def call(
        self,
        hidden_states: Any,
        start_positions: Any = None,
        end_positions: Any = None,
        cls_index: Any = None,
        is_impossible: Any = None,
        p_mask: Any = None,
    ) -> dict[str, Any]:
        """Return {"loss"} when positions are given, else the beam outputs (see the class docstring)."""
        start_logits = self.start_logits(hidden_states, p_mask=p_mask)  # (bs, slen), float32

        if start_positions is not None and end_positions is not None:
            start_positions, end_positions, cls_index, is_impossible = (
                ops.squeeze(x, -1) if x is not None and len(x.shape) > 1 else x
                for x in (start_positions, end_positions, cls_index, is_impossible)
            )
            slen = ops.shape(hidden_states)[1]
            start_positions = ops.clip(ops.cast(start_positions, "int32"), 0, slen)
            end_positions = ops.clip(ops.cast(end_positions, "int32"), 0, slen)
            # the end scores depend on the true start; an ignored start (= slen) gathers the last token
            gather_start = ops.minimum(start_positions, slen - 1)
            end_logits = self.end_logits(hidden_states, start_positions=gather_start, p_mask=p_mask)
            start_loss = cross_entropy(start_logits, ops.where(start_positions == slen, -100, start_positions))
            end_loss = cross_entropy(end_logits, ops.where(end_positions == slen, -100, end_positions))
            loss = (start_loss + end_loss) / 2
            if cls_index is not None and is_impossible is not None:
                cls_logits = self.answer_class(hidden_states, start_positions=gather_start, cls_index=cls_index)
                cls_loss = ops.mean(
                    ops.binary_crossentropy(ops.cast(is_impossible, "float32"), cls_logits, from_logits=True)
                )
                loss = loss + 0.5 * cls_loss
            return {"loss": loss}

        slen = ops.shape(hidden_states)[1]
        start_probs = ops.softmax(start_logits, axis=-1)  # (bs, slen)
        start_top_probs, start_top_index = ops.top_k(start_probs, self.start_n_top)  # (bs, start_n_top)
        start_states = gather_positions(hidden_states, start_top_index)  # (bs, start_n_top, dim)
        start_states = ops.repeat(start_states[:, None], slen, axis=1)  # (bs, slen, start_n_top, dim)
        hidden_expanded = ops.repeat(hidden_states[:, :, None], self.start_n_top, axis=2)
        end_p_mask = p_mask[:, :, None] if p_mask is not None else None
        end_logits = self.end_logits(hidden_expanded, start_states=start_states, p_mask=end_p_mask)
        end_probs = ops.softmax(end_logits, axis=1)  # (bs, slen, start_n_top)
        # top-k over the sequence axis, laid out (bs, end_n_top, start_n_top) as PyTorch's topk(dim=1)
        end_top_probs, end_top_index = ops.top_k(ops.transpose(end_probs, (0, 2, 1)), self.end_n_top)
        end_top_probs = ops.reshape(ops.transpose(end_top_probs, (0, 2, 1)), (-1, self.start_n_top * self.end_n_top))
        end_top_index = ops.reshape(ops.transpose(end_top_index, (0, 2, 1)), (-1, self.start_n_top * self.end_n_top))

        # answerability from the start-probability-weighted hidden state
        weighted_start = ops.einsum("blh,bl->bh", ops.cast(hidden_states, "float32"), start_probs)
        cls_logits = self.answer_class(hidden_states, start_states=weighted_start, cls_index=cls_index)
        return {
            "start_top_log_probs": start_top_probs,
            "start_top_index": start_top_index,
            "end_top_log_probs": end_top_probs,
            "end_top_index": end_top_index,
            "cls_logits": cls_logits,
        }
