"""Behaviour of the Keras models: input forms, dropout, the cache, causal masks, head masks, input
validation, mixed precision, and Keras serialisation."""

import re
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tf_helpers import arch_inputs, arch_labels, to_numpy  # noqa: E402
from xlm_testing import make_inputs, tiny_config  # noqa: E402
import xlm  # noqa: E402
from xlm.tf_backend import (  # noqa: E402
    MODEL_CLASSES,
    TFXLMCache,
    TFXLMForMultipleChoice,
    TFXLMForQuestionAnswering,
    TFXLMForSequenceClassification,
    TFXLMMainLayer,
    TFXLMModel,
    TFXLMWithLMHeadModel,
)
from xlm.tf_backend.layers import (  # noqa: E402
    TFXLMDropout,
    cross_entropy,
    in_xla_compilation,
    linear_cross_entropy,
    philox_uint32,
)
from xlm.weights import ARCHITECTURES  # noqa: E402


@pytest.fixture(scope="module")
def lm():
    config = tiny_config("multilang")
    return config, TFXLMWithLMHeadModel(config)


def test_lazy_export_from_xlm():
    assert xlm.TFXLMModel is TFXLMModel and xlm.TFXLMMainLayer is TFXLMMainLayer


def test_inputs_as_keywords_dict_list_and_positional(lm):
    config, model = lm
    inputs = make_inputs(config)
    expected = np.asarray(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], langs=inputs["langs"]).logits)
    for out in (
        model({"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "langs": inputs["langs"]}),
        model([inputs["input_ids"], inputs["attention_mask"], inputs["langs"]]),
        model(inputs["input_ids"], inputs["attention_mask"], inputs["langs"]),
        model(tf.constant(inputs["input_ids"]), attention_mask=tf.constant(inputs["attention_mask"]), langs=inputs["langs"]),
    ):
        np.testing.assert_allclose(np.asarray(out.logits), expected, atol=1e-6)
    with pytest.raises(ValueError, match="unknown input"):
        model({"input_ids": inputs["input_ids"], "bogus": inputs["langs"]})


def test_return_dict_false_gives_tuples(lm):
    config, model = lm
    inputs = make_inputs(config)
    labels = arch_labels(config, "XLMWithLMHeadModel", inputs)
    out = model(inputs, **labels, output_hidden_states=True, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 3  # loss, logits, hidden states
    full = model(inputs, **labels, output_hidden_states=True)
    np.testing.assert_allclose(float(out[0]), float(full.loss), atol=1e-6)
    assert len(out[2]) == config.n_layers + 1


def test_dropout_only_when_training():
    config = tiny_config(dropout=0.5, attention_dropout=0.5)
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    a, b = (np.asarray(model(inputs).last_hidden_state) for _ in range(2))  # op by op, then traced
    np.testing.assert_allclose(a, b, atol=1e-6)
    c, d = (np.asarray(model(inputs, training=True).last_hidden_state) for _ in range(2))
    assert not np.allclose(c, a) and not np.allclose(c, d)


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


def test_dropout_rate_scale_and_dtype():
    layer = TFXLMDropout(0.1, seed=3)
    y = layer(tf.ones([1000, 1000]), training=True).numpy()
    assert abs((y == 0).mean() - 0.1) < 0.0015  # 5 standard deviations of the dropped share
    assert set(np.unique(y).tolist()) == {0.0, float(np.float32(1 / 0.9))}
    np.testing.assert_array_equal(layer(tf.ones([3, 4])).numpy(), np.ones([3, 4]))  # not training: identity
    half = TFXLMDropout(0.5, dtype="mixed_float16")(tf.ones([64, 64], tf.float16), training=True)
    assert half.dtype == tf.float16 and set(np.unique(half.numpy()).tolist()) == {0.0, 2.0}
    assert np.all(TFXLMDropout(1.0)(tf.ones([2, 3]), training=True).numpy() == 0)
    with pytest.raises(ValueError, match="noise_shape"):
        TFXLMDropout(0.1, noise_shape=(1, 4))


def test_causal_model_with_attention_mask_and_lengths():
    """transformers' TF get_masks raises here; ours equals the PyTorch reference (see the parity tests)."""
    config = tiny_config("causal")
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    with_mask = model(inputs["input_ids"], attention_mask=inputs["attention_mask"], output_attentions=True)
    with_lengths = model(inputs["input_ids"], lengths=inputs["lengths"])
    np.testing.assert_allclose(np.asarray(with_mask.last_hidden_state), np.asarray(with_lengths.last_hidden_state), atol=1e-6)
    weights = np.asarray(with_mask.attentions[0])
    assert np.all(weights[:, :, np.triu_indices(inputs["input_ids"].shape[1], 1)[0], np.triu_indices(inputs["input_ids"].shape[1], 1)[1]] == 0)
    # a prefix's states do not depend on what follows
    short = model(inputs["input_ids"][:1, :5], lengths=np.array([5]))
    np.testing.assert_allclose(np.asarray(short.last_hidden_state), np.asarray(with_lengths.last_hidden_state)[:1, :5], atol=1e-5)


def test_incremental_cache_equals_full_recomputation():
    config = tiny_config("causal")
    model = TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config, pad=False)
    ids, langs = inputs["input_ids"], inputs["langs"]
    full = np.asarray(model(ids, langs=langs).logits)
    cache = TFXLMCache()
    pieces = []
    for end in (4, 5, 8, ids.shape[1]):
        out = model(ids[:, :end], langs=langs[:, :end], cache=cache)
        pieces.append(np.asarray(out.logits))
        assert cache["slen"] == end and len(cache[0]) == 2
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="the cache already holds 11 positions"):
        model(ids, langs=langs, cache=cache)
    with pytest.raises(ValueError, match=r"the input has no positions \(sequence length 0\)"):
        model(ids[:, :0])
    with pytest.raises(TypeError, match="TFXLMCache"):
        model(ids, cache={})


def test_head_mask_multiplies_the_attention_probabilities():
    config = tiny_config()
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    head_mask = np.ones((config.n_layers, config.n_heads), np.float32)
    head_mask[0, 1] = 0.0
    out = model(inputs, head_mask=head_mask, output_attentions=True)
    plain = model(inputs, output_attentions=True)
    weights = np.asarray(out.attentions[0])
    assert np.all(weights[:, 1] == 0)
    np.testing.assert_allclose(weights[:, 0], np.asarray(plain.attentions[0])[:, 0], atol=1e-6)
    same_everywhere = model(inputs, head_mask=np.ones(config.n_heads, np.float32))
    np.testing.assert_allclose(np.asarray(same_everywhere.last_hidden_state), np.asarray(plain.last_hidden_state), atol=1e-6)
    with pytest.raises(ValueError, match=r"head_mask has shape \[3\]"):
        model(inputs, head_mask=np.ones(3, np.float32))


def test_inputs_embeds_equal_input_ids():
    config = tiny_config()
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    embeds = tf.gather(model.get_input_embeddings().weight, inputs["input_ids"])
    a = model(inputs["input_ids"], attention_mask=inputs["attention_mask"])
    b = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    np.testing.assert_allclose(np.asarray(a.last_hidden_state), np.asarray(b.last_hidden_state), atol=1e-6)


BAD_INPUTS = [  # (inputs, the PyTorch stack's message)
    (dict(input_ids=np.array([[5, 99, 7]])), "input_ids contains id 99, outside [0, 99) (vocab_size = 99)"),
    (dict(input_ids=np.array([[5, -1, 7]])), "input_ids contains id -1, outside [0, 99) (vocab_size = 99)"),
    (dict(input_ids=np.array([[5, 6]]), langs=np.array([[0, 3]])), "langs contains id 3, outside [0, 3) (n_langs = 3)"),
    (dict(input_ids=np.array([[5, 6]]), token_type_ids=np.array([[0, 120]])), "token_type_ids contains id 120, outside [0, 99)"),
    (dict(input_ids=np.array([[5, 6]]), position_ids=np.array([[0, 64]])),
     "position_ids contains id 64, outside [0, 64) (max_position_embeddings = 64)"),
    (dict(input_ids=np.full((1, 65), 5)), "sequence length 65 exceeds max_position_embeddings = 64"),
    (dict(input_ids=np.array([[5, 6]]), attention_mask=np.ones((1, 3))),
     "attention_mask has shape [1, 3] but input_ids has shape [1, 2]; they must match"),
    (dict(input_ids=np.array([[5, 6]]), langs=np.zeros((2, 2), np.int64)), "langs has shape [2, 2] but input_ids has shape [1, 2]"),
    (dict(input_ids=np.array([[5, 6]]), lengths=np.array([3])), "lengths contains 3, outside [0, 2] (the sequence length)"),
    (dict(input_ids=np.array([5, 6])), "input_ids must have shape (batch, sequence), got [2]"),
    (dict(inputs_embeds=np.zeros((1, 2, 5), np.float32)), "inputs_embeds must have shape (batch, sequence, 32), got [1, 2, 5]"),
    (dict(), "pass exactly one of input_ids and inputs_embeds"),
]


@pytest.mark.parametrize("kwargs,message", BAD_INPUTS)
def test_bad_inputs_raise_the_pytorch_stacks_messages(kwargs, message):
    model = TFXLMModel(tiny_config("multilang"))
    for _ in range(2):  # op by op, then the check before the traced path
        with pytest.raises(ValueError, match=re.escape(message)):
            model(**kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        model.transformer(**kwargs)


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


def test_multiple_choice_checks_and_needs_no_initializer_range():
    config = tiny_config()
    assert not hasattr(config, "initializer_range")
    model = TFXLMForMultipleChoice(config)
    inputs = arch_inputs(config, "XLMForMultipleChoice")
    assert model(inputs).logits.shape == (3, 2)
    with pytest.raises(ValueError, match=r"attention_mask has shape \[3, 2\]"):
        model(inputs["input_ids"], attention_mask=inputs["attention_mask"][:, :, 0])
    with pytest.raises(ValueError, match="input_ids contains id 200"):
        bad = inputs["input_ids"].copy()
        bad[0, 1, 2] = 200
        model(bad)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fully_padded_row_has_no_nan(policy):
    """transformers' TF port fills masked scores with -1e30, which overflows float16 to -inf: NaN."""
    config = tiny_config()
    inputs = make_inputs(config)
    inputs.pop("lengths")
    inputs["attention_mask"][1] = 0  # a row of padding only
    for architecture in ARCHITECTURES:
        model = MODEL_CLASSES[architecture](config, dtype=policy)
        model_inputs = arch_inputs(config, architecture) if architecture == "XLMForMultipleChoice" else inputs
        out = model(model_inputs, output_attentions=True, output_hidden_states=True)
        assert out.hidden_states[-1].dtype == policy.split("_")[1]
        for key, value in to_numpy(out).items():
            for array in value if isinstance(value, tuple) else (value,):
                assert np.isfinite(array.astype(np.float32)).all(), f"{policy} {architecture} {key}"
        if architecture == "XLMModel":
            reference = MODEL_CLASSES[architecture](config)
            reference.load_state_dict(model.state_dict())
            expected = np.asarray(reference(inputs).last_hidden_state)
            np.testing.assert_allclose(np.asarray(out.last_hidden_state, np.float32), expected, atol=0.1)
    weights = np.asarray(out.attentions[0], np.float32)  # the padded row attends uniformly, no NaN
    np.testing.assert_allclose(weights[1], 1.0 / inputs["input_ids"].shape[1], atol=1e-3)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_keras_file_round_trip(architecture, tmp_path):
    config = tiny_config("asm" if architecture == "XLMWithLMHeadModel" else "multilang")
    model = MODEL_CLASSES[architecture](config)
    inputs = arch_inputs(config, architecture)
    expected = to_numpy(model(inputs))
    clone = type(model).from_config(model.get_config())
    assert clone.config == config and clone.name == model.name
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    got = to_numpy(loaded(inputs))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    # save_weights / load_weights into a fresh model
    weights_path = str(tmp_path / "model.weights.h5")
    model.save_weights(weights_path)
    fresh = MODEL_CLASSES[architecture](config)
    fresh.load_weights(weights_path)
    got = to_numpy(fresh(inputs))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_main_layer_serialises():
    layer = TFXLMMainLayer(tiny_config("sinusoidal"), name="transformer")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, TFXLMMainLayer) and clone.config == layer.config


def test_predict_returns_the_output_class_with_arrays():
    config = tiny_config()
    model = TFXLMForQuestionAnswering(config)
    inputs = make_inputs(config)
    inputs.pop("lengths")
    out = model.predict(inputs, batch_size=2, verbose=0)
    assert out["start_top_index"].shape == (3, config.start_n_top) and out["cls_logits"].shape == (3,)
    # the output class, with numpy arrays, as transformers' TF models return
    assert type(out).__name__ == "XLMForQuestionAnsweringOutput" and isinstance(out.cls_logits, np.ndarray)
    assert out[0] is out.start_top_log_probs
    np.testing.assert_allclose(out.cls_logits, np.asarray(model(inputs).cls_logits), atol=1e-5)


def test_functional_api():
    config = tiny_config()
    model = MODEL_CLASSES["XLMForSequenceClassification"](config)
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    out = model(ids, output_hidden_states=True)
    assert list(out.keys()) == ["logits", "hidden_states"]
    wrapped = keras.Model(ids, keras.layers.Activation("softmax")(out.logits))
    inputs = make_inputs(config, pad=False)["input_ids"]
    expected = tf.nn.softmax(model(inputs).logits)
    np.testing.assert_allclose(np.asarray(wrapped(inputs)), np.asarray(expected), atol=1e-6)


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


def test_lora_dense_layers_take_keras_own_path():
    config = tiny_config()
    model = TFXLMModel(config)
    inputs = make_inputs(config, pad=False)["input_ids"]
    before = np.asarray(model(inputs).last_hidden_state)
    attention = model.transformer.attentions[0]
    attention.q_lin.enable_lora(2)
    # LoRA's B starts at zero: the outputs are unchanged until it is trained ...
    np.testing.assert_allclose(np.asarray(model(inputs).last_hidden_state), before, atol=1e-6)
    attention.q_lin.lora_kernel_b.assign(np.ones(attention.q_lin.lora_kernel_b.shape, "float32"))
    # ... and then they move, which they would not if our matmul ignored the adapters
    assert np.abs(np.asarray(model(inputs).last_hidden_state) - before).max() > 1e-3


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


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_embeddings_as_the_pytorch_twin(architecture):
    """get_output_embeddings(): the word-embedding layer for the LM head, None for every other class
    (as XLMPreTrainedModel's)."""
    model = MODEL_CLASSES[architecture](tiny_config())
    expected = model.get_input_embeddings() if architecture == "XLMWithLMHeadModel" else None
    assert model.get_output_embeddings() is expected
