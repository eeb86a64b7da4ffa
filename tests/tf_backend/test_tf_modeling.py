"""The Keras models on TensorFlow: graphs, XLA and the TensorFlow fast paths (tensorflow_only.py).
(Behaviour on every backend: test_keras_modeling.py.)"""

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from xlm_testing import make_inputs, tiny_config  # noqa: E402
import xlm  # noqa: E402
from xlm.tf_backend import TFXLMForSequenceClassification, TFXLMModel, TFXLMWithLMHeadModel  # noqa: E402
from xlm.tf_backend.layers import TFXLMDropout, cross_entropy  # noqa: E402
from xlm.tf_backend.tensorflow_only import in_xla_compilation, linear_cross_entropy, philox_uint32  # noqa: E402

pytestmark = pytest.mark.tf_only


def test_xla_compilation_is_detected():
    """The LM loss and dropout pick their XLA paths by it (TensorFlow's private XLA-context check): both paths
    give the same numbers, so only this test notices when the check stops working."""
    assert not tf.function(lambda: tf.constant(in_xla_compilation()))().numpy()
    assert tf.function(lambda: tf.constant(in_xla_compilation()), jit_compile=True)().numpy()


@pytest.mark.parametrize("shape", [(3, 10), (7,), (2, 3, 5, 9), (0, 4)])
def test_philox_bits_under_xla_equal_tensorflows_generator(shape):
    under_xla = tf.function(lambda seed: philox_uint32(tf.constant(shape), seed), jit_compile=True)
    for seed in ([123, 456], [0, 0], [-5, -(2**31)], [2**31 - 1, 7]):
        expected = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")
        got = under_xla(tf.constant(seed))
        assert got.dtype == tf.uint32 and tuple(got.shape) == shape
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_dropout_mask_is_the_same_eagerly_in_a_graph_and_under_xla():
    x = tf.random.normal([4, 33, 17], seed=1)  # 2,244 elements: not a multiple of Philox's 4 words
    outputs = {}
    for mode in ("eager", "graph", "xla"):
        layer = TFXLMDropout(0.3, seed=11)
        call = lambda x: layer(x, training=True)  # noqa: E731
        if mode != "eager":
            call = tf.function(call, jit_compile=mode == "xla")
        outputs[mode] = [call(x).numpy() for _ in range(2)]
    np.testing.assert_array_equal(outputs["graph"], outputs["eager"])
    np.testing.assert_array_equal(outputs["xla"], outputs["eager"])
    first, second = outputs["eager"]
    assert not np.array_equal(first == 0, second == 0)  # a new mask every call
    kept = first != 0
    np.testing.assert_array_equal(first[kept], (x.numpy() * np.float32(1 / 0.7))[kept])
    # the mask is Philox's uint32 draw >= round(rate · 2³²) for the seed the layer's generator gives
    seed = tf.cast(tf.math.floormod(keras.random.SeedGenerator(11).next(), 2**31 - 1), tf.int32)
    bits = tf.random.stateless_uniform(x.shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")
    np.testing.assert_array_equal(kept, bits.numpy() >= round(0.3 * 2**32))


def test_bad_ids_fail_inside_a_graph_with_the_same_message():
    """In a traced function the ids are unknown when tracing: a tf.debugging assertion stops the run
    before the lookup (on GPU the lookup itself would return zeros)."""
    model = TFXLMModel(tiny_config("multilang"))
    run = tf.function(lambda ids, langs: model(ids, langs=langs).last_hidden_state,
                      input_signature=[tf.TensorSpec([None, None], tf.int64)] * 2)
    ok = np.array([[5, 6, 7]])
    assert run(ok, np.zeros_like(ok)).shape == (1, 3, 32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids contains an id outside \[0, 99\) \(vocab_size = 99\)"):
        run(np.array([[5, 99, 7]]), np.zeros((1, 3), np.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"langs contains an id outside \[0, 3\)"):
        run(ok, np.array([[0, 0, 4]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="sequence length exceeds max_position_embeddings = 64"):
        run(np.full((1, 65), 5), np.zeros((1, 65), np.int64))


def test_a_tf_function_can_return_the_outputs(lm):
    """tf.function rebuilds mappings from (key, value) pairs; our output classes accept them."""
    config, model = lm
    inputs = make_inputs(config)
    step = tf.function(lambda x: model(x, output_hidden_states=True))
    out = step({k: tf.constant(v) for k, v in inputs.items()})
    assert type(out).__name__ == "MaskedLMOutput" and list(out.keys()) == ["logits", "hidden_states"]
    expected = model(inputs, output_hidden_states=True)
    np.testing.assert_allclose(np.asarray(out.logits), np.asarray(expected.logits), atol=1e-5)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("bad_shape", [(3, 10), (3, 12), (2, 11), (33,)])
def test_lm_labels_of_another_shape(lm, bad_shape, graph):
    """LM labels must line up with the input positions, as in the PyTorch stack."""
    config, model = lm
    ids = tf.constant(make_inputs(config)["input_ids"])  # (3, 11)
    labels = tf.zeros(bad_shape, dtype=tf.int32)
    call = tf.function(lambda i, y: model(i, labels=y).loss) if graph else (lambda i, y: model(i, labels=y).loss)
    message = rf"labels has shape \({', '.join(map(str, bad_shape))},?\); expected \(3, 11\)"
    with pytest.raises(ValueError, match=message):
        call(ids, labels)


@pytest.mark.parametrize("logits_used", [False, True])
@pytest.mark.parametrize("labelled", [0.15, 1.0, 0.0])
def test_lm_loss_and_gradients_equal_eagerly_in_a_graph_and_under_xla(labelled, logits_used):
    """In a graph the LM loss projects the labelled rows on their own (XLA and eager calls take the
    full logits): loss and gradients must not change. No label at all: a NaN loss, as PyTorch, with
    zero gradients, not NaN ones."""
    config = tiny_config("default", dropout=0.0, attention_dropout=0.0)
    keras.utils.set_random_seed(0)
    model = TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config, seed=3)
    labels = inputs["input_ids"].copy()
    labels[np.random.default_rng(0).random(labels.shape) >= labelled] = -100

    def step():
        with tf.GradientTape() as tape:
            out = model(inputs, labels=labels)
            total = out.loss + (tf.reduce_mean(tf.square(out.logits)) if logits_used else 0.0)
        return out.loss, [tf.convert_to_tensor(g) for g in tape.gradient(total, model.trainable_variables)]

    eager_loss, eager_grads = step()
    assert all(np.isfinite(g).all() for g in eager_grads)
    if not labelled:
        assert np.isnan(eager_loss)
        assert logits_used or not any(np.any(g) for g in eager_grads)
    for jit_compile in (False, True):
        loss, grads = tf.function(step, jit_compile=jit_compile)()
        np.testing.assert_allclose(loss, eager_loss, atol=1e-6)
        for grad, eager_grad in zip(grads, eager_grads):
            np.testing.assert_allclose(grad, eager_grad, atol=1e-6)  # two gradient paths summed in another order


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("bfloat16", 1e-2)])
@pytest.mark.parametrize("labelled", [1.0, 0.4, 0.0])
def test_linear_cross_entropy_equals_autodiff_of_the_logits(dtype, atol, labelled):
    """The hand-written gradient of the XLA LM loss against TensorFlow's autodiff of projection + softmax
    cross entropy; bfloat16 inputs keep the logits' dtype for the products, as the model does."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((20, 8)), dtype)
    weight = tf.constant(rng.standard_normal((50, 8)) * 0.5, dtype)
    bias = tf.constant(rng.standard_normal(50) * 0.1, dtype)
    labels = rng.integers(0, 50, 20)
    labels[rng.random(20) >= labelled] = -100

    def loss_and_grads(loss_fn):
        with tf.GradientTape() as tape:
            tape.watch([x, weight, bias])
            loss = loss_fn()
        return [loss, *tape.gradient(loss, [x, weight, bias])]

    reference = tf.function(lambda: loss_and_grads(
        lambda: cross_entropy(tf.matmul(x, weight, transpose_b=True) + bias, labels)), jit_compile=True)()
    ours = tf.function(lambda: loss_and_grads(lambda: linear_cross_entropy(x, weight, bias, labels)),
                       jit_compile=True)()
    assert [t.dtype for t in ours] == [t.dtype for t in reference]
    for got, expected in zip(ours, reference):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32), atol=atol)
    assert np.isnan(ours[0]) == (labelled == 0)  # no label: NaN loss, zero gradients
    assert all(np.any(np.asarray(g, np.float32)) for g in ours[1:]) == (labelled > 0)
    for bad in (50, -1, -101):  # out of range: NaN, as TensorFlow's sparse cross entropy under XLA
        wrong = np.where(np.arange(20) == 3, bad, labels)
        assert np.isnan(tf.function(lambda: linear_cross_entropy(x, weight, bias, wrong), jit_compile=True)())


@pytest.mark.parametrize("variant", ["default", "asm"])
def test_return_logits_false_gives_the_same_loss_and_gradients(variant):
    config = tiny_config(variant, dropout=0.0, attention_dropout=0.0)
    keras.utils.set_random_seed(0)
    model = TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config, seed=3)
    labels = inputs["input_ids"].copy()
    labels[np.random.default_rng(1).random(labels.shape) >= 0.3] = -100

    def step(return_logits):
        with tf.GradientTape() as tape:
            out = model(inputs, labels=labels, return_logits=return_logits)
        assert (out.logits is not None) == return_logits
        return out.loss, [tf.convert_to_tensor(g) for g in tape.gradient(out.loss, model.trainable_variables)]

    full_loss, full_grads = step(True)
    for alone_loss, alone_grads in (step(False), tf.function(lambda: step(False))()):
        np.testing.assert_allclose(alone_loss, full_loss, atol=1e-6)
        for alone, full in zip(alone_grads, full_grads):
            np.testing.assert_allclose(alone, full, atol=1e-6)
    with pytest.raises(ValueError, match="return_logits=False needs labels"):
        model(inputs, return_logits=False)


def test_a_tokenizer_batch_goes_in_as_it_comes_out():
    """tokenizer(..., return_tensors="tf") gives a BatchEncoding (a dict subclass Keras does not
    recognise): model(batch), model.predict(batch) and evaluate take it as transformers' models do."""
    tokenizer = xlm.XLMTokenizer.from_pretrained(str(Path(xlm.__file__).parent / "data" / "test_tokenizer"))
    batch = tokenizer(["the first sentence", "a second, longer sentence here"], padding=True, return_tensors="tf")
    assert type(batch) is not dict and isinstance(batch, dict)
    model = TFXLMForSequenceClassification(tiny_config("default", vocab_size=tokenizer.vocab_size))
    expected = np.asarray(model(dict(batch)).logits)
    np.testing.assert_allclose(np.asarray(model(batch).logits), expected, atol=1e-6)
    np.testing.assert_allclose(model.predict(batch, verbose=0)["logits"], expected, atol=1e-5)
    model.compile(optimizer="sgd", run_eagerly=True)
    labelled = tokenizer(["one", "two"], padding=True, return_tensors="tf")
    labelled["labels"] = tf.constant([0, 1])
    assert np.isfinite(model.evaluate(labelled, verbose=0))
