"""Keras 3 building blocks of XLM: embeddings, attention, feed-forward, output and pooling layers.

Every layer creates its variables in `build()` from the config alone (no input shape needed), and
each variable sits under the Keras layer names of the weight table (`xlm.weights`): a layer named
`q_lin` inside `attentions_._0` inside `transformer` holds `transformer/attentions_._0/q_lin/kernel`.
Under mixed precision, layer norms, softmaxes and losses run in float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xlm._backend import require
from xlm.config import XLMConfig
from xlm.weights import asm_cluster_sizes

tf = require("tensorflow")
keras = require("keras")
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


class TFXLMDense(keras.layers.Dense):
    """keras.layers.Dense computing (..., in) @ kernel as one 2-D matmul.

    Keras' Dense goes through `tf.tensordot` for inputs of rank > 2, several more operations per
    call: a third of the eager forward pass of a small model. LoRA and quantized layers take
    Keras' own path.
    """

    def call(self, inputs: Any, training: Any = None) -> Any:
        if self.lora_enabled or self.quantization_mode is not None:
            return super().call(inputs, training=training)
        kernel = tf.convert_to_tensor(self.kernel)
        if kernel.dtype != inputs.dtype:
            kernel = tf.cast(kernel, inputs.dtype)
        if len(inputs.shape) == 2:
            outputs = tf.matmul(inputs, kernel)
        else:
            outputs = tf.matmul(tf.reshape(inputs, (-1, kernel.shape[0])), kernel)
            outputs = tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0))
            if not tf.executing_eagerly():  # keep the static shape a dynamic reshape loses
                outputs.set_shape(inputs.shape[:-1] + [self.units])
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        return outputs


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


class TFXLMDropout(keras.layers.Dropout):
    """keras.layers.Dropout drawing its mask from Philox4x32-10 bits (`philox_uint32`): an element is kept when
    its uint32 draw is at least round(rate · 2³²), and the mask is the same eagerly, in a graph and under XLA.

    Keras' own dropout uses TensorFlow's default generator, which under XLA on CPU (ThreeFry) is about 20× slower
    than Philox, and draws floats, whose bits differ between XLA and TensorFlow's kernels.
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        if noise_shape is not None:
            raise ValueError(f"TFXLMDropout draws one mask element per input element; noise_shape={noise_shape!r} "
                             "is not supported")
        super().__init__(rate, seed=seed, **kwargs)

    def call(self, inputs: Any, training: Any = False) -> Any:
        if not training or self.rate == 0:
            return inputs
        if self.rate >= 1:
            return tf.zeros_like(inputs)
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
        threshold = min(round(self.rate * 2**32), 2**32 - 1)
        keep = philox_uint32(tf.shape(inputs), seed) >= tf.constant(threshold, tf.uint32)
        return tf.where(keep, inputs * tf.cast(1 / (1 - self.rate), inputs.dtype), tf.zeros_like(inputs))


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

    Eagerly, a label outside [0, vocab) other than -100 is a ValueError (as in the PyTorch stack).
    """
    check_lm_labels(labels, logits.shape[-1])
    return cross_entropy(logits, labels)


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


def check_lm_labels(labels: Any, vocab: int) -> None:
    """Eagerly, a ValueError for a label outside [0, vocab) other than -100 (as in the PyTorch stack)."""
    if tf.executing_eagerly():
        values = np.asarray(labels)
        bad = values[((values < 0) & (values != -100)) | (values >= vocab)]
        if bad.size:
            raise ValueError(f"labels contains id {bad.flat[0]}, outside [0, {vocab}) and not -100 (ignored)")


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
        table = ops.cast(self.weight, hidden_states.dtype)
        flat = tf.reshape(hidden_states, (-1, self.dim))
        # transpose_b: no transposed copy of the (vocab × dim) table, forward or backward
        scores = tf.matmul(flat, table, transpose_b=True)
        scores = tf.reshape(scores, tf.concat([tf.shape(hidden_states)[:-1], [self.num_embeddings]], axis=0))
        if not tf.executing_eagerly():  # keep the static shape a dynamic reshape loses
            scores.set_shape(hidden_states.shape[:-1] + [self.num_embeddings])
        return scores


# --- encoder layers -----------------------------------------------------------------------------


class TFXLMMultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with an optional key/value cache for incremental decoding.

    Scales q by 1/sqrt(head_dim) before q·kᵀ, fills masked scores with float32's minimum and takes
    the softmax in float32 (a fully masked row gets uniform weights, never NaN, in any dtype), as
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
        batch = ops.shape(x)[0]
        x = ops.reshape(x, (batch, -1, self.n_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # (bs, n_heads, len, head_dim)

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
                k = ops.concatenate([k_past, k], axis=2)
                v = ops.concatenate([v_past, v], axis=2)
            cache[self.layer_idx] = (k, v)
        # q, k, v: (bs, n_heads, qlen | klen, head_dim)

        q = q / math.sqrt(self.head_dim)
        scores = tf.matmul(q, k, transpose_b=True)  # (bs, n_heads, qlen, klen)
        if len(attn_mask.shape) == 3:
            keep = ops.expand_dims(attn_mask, 1)  # (bs | 1, 1, qlen, klen)
        else:
            keep = attn_mask[:, None, None, :]  # (bs, 1, 1, klen)
        scores = ops.cast(scores, "float32")
        scores = ops.where(ops.not_equal(keep, 0), scores, np.finfo(np.float32).min)
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
    (PyTorch's AdaptiveLogSoftmaxWithLoss with head_bias=True: `head`, `tail_._k_._0`,
    `tail_._k_._1`), and the loss is the adaptive-softmax loss over labels ≠ -100.
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
            # Cluster k: tail_._k_._0 (dim -> proj) then tail_._k_._1 (proj -> words), no biases.
            self.tail_projections, self.tail_outputs = [], []
            for k, (proj, words) in enumerate(asm_cluster_sizes(config)):
                self.tail_projections.append(
                    dense(proj, config.init_std, f"tail_._{k}_._0", self.dtype_policy, use_bias=False)
                )
                self.tail_outputs.append(
                    dense(words, config.init_std, f"tail_._{k}_._1", self.dtype_policy, use_bias=False)
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
        bias = self.bias.numpy()
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
            if not return_logits:
                picked, targets = self._labelled_rows(hidden_states, labels)
                return None, nll_of_log_probs(self.log_prob(picked), targets)
            logits = self.log_prob(hidden_states)
            loss = nll_of_log_probs(logits, labels) if labels is not None else None
            return logits, loss
        bias = ops.cast(self.bias, hidden_states.dtype)
        logits = self._tied.layer.linear(hidden_states) + bias if return_logits else None
        if labels is None:
            return logits, None
        if in_xla_compilation():
            # XLA would pad the labelled rows below to all rows, and it merges the loss's projection with the
            # logits' (the same product), so the logits cost nothing more
            table = ops.cast(self._tied.layer.weight, hidden_states.dtype)
            flat = tf.reshape(hidden_states, (-1, self.dim))
            return logits, linear_cross_entropy(flat, table, bias, tf.reshape(labels, (-1,)))
        if tf.executing_eagerly() and return_logits:  # the logits exist already
            return logits, lm_cross_entropy(logits, labels)
        # In a graph, the loss projects the labelled rows again, on their own. When nothing reads the
        # logits (model.fit without metrics), TensorFlow prunes the full projection, and with masked-LM
        # labels (15 % of the tokens) the head's softmax and gradient products shrink to 15 %.
        check_lm_labels(labels, self.n_words)
        picked, targets = self._labelled_rows(hidden_states, labels)
        picked_logits = self._tied.layer.linear(picked) + bias
        return logits, cross_entropy(picked_logits, targets, ignore_index=None)

    def _labelled_rows(self, hidden_states: Any, labels: Any) -> tuple[Any, Any]:
        """The hidden states (rows, dim) and labels (rows,) of the positions whose label is not -100."""
        labels = tf.reshape(labels, (-1,))
        rows = tf.where(labels != -100)[:, 0]
        return tf.gather(tf.reshape(hidden_states, (-1, self.dim)), rows), tf.gather(labels, rows)


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
                output = tf.gather(hidden_states, ops.cast(cls_index, "int32"), batch_dims=1)
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
            start = tf.gather(hidden_states, ops.cast(start_positions, "int32"), batch_dims=1)  # (bs, hsz)
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
            start_states = tf.gather(hidden_states, ops.cast(start_positions, "int32"), batch_dims=1)  # (bs, hsz)
        elif start_states is None:
            raise ValueError("TFXLMPoolerAnswerClass needs start_states or start_positions")
        if cls_index is not None:
            cls_token_state = tf.gather(hidden_states, ops.cast(cls_index, "int32"), batch_dims=1)
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
        start_states = tf.gather(hidden_states, start_top_index, batch_dims=1)  # (bs, start_n_top, dim)
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
