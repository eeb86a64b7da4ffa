"""Behaviour of the Keras models on every Keras backend: input forms, dropout, the cache, causal masks,
head masks, input validation, mixed precision, fused against explicit attention, and Keras serialisation.
(TensorFlow's graphs, XLA and its fast paths: test_tf_modeling.py.)"""

import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tf_helpers import arch_inputs, arch_labels, to_numpy  # noqa: E402
from xlm_testing import make_inputs, tiny_config  # noqa: E402
import xlm  # noqa: E402
from xlm.tf_backend import (  # noqa: E402
    MODEL_CLASSES,
    TFXLMCache,
    TFXLMForMultipleChoice,
    TFXLMForQuestionAnswering,
    TFXLMMainLayer,
    TFXLMModel,
    TFXLMWithLMHeadModel,
)
from xlm.tf_backend.layers import TFXLMDropout  # noqa: E402
from xlm.weights import ARCHITECTURES  # noqa: E402

pytestmark = pytest.mark.keras_backends
ops = keras.ops


def to_np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def test_lazy_export_from_xlm():
    assert xlm.TFXLMModel is TFXLMModel and xlm.TFXLMMainLayer is TFXLMMainLayer


def test_inputs_as_keywords_dict_list_and_positional(lm):
    config, model = lm
    inputs = make_inputs(config)
    expected = to_np(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], langs=inputs["langs"]).logits)
    for out in (
        model({"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "langs": inputs["langs"]}),
        model([inputs["input_ids"], inputs["attention_mask"], inputs["langs"]]),
        model(inputs["input_ids"], inputs["attention_mask"], inputs["langs"]),
        model(ops.convert_to_tensor(inputs["input_ids"]), attention_mask=ops.convert_to_tensor(inputs["attention_mask"]),
              langs=inputs["langs"]),
    ):
        np.testing.assert_allclose(to_np(out.logits), expected, atol=1e-6)
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
    a, b = (to_np(model(inputs).last_hidden_state) for _ in range(2))  # op by op, then traced
    np.testing.assert_allclose(a, b, atol=1e-6)
    c, d = (to_np(model(inputs, training=True).last_hidden_state) for _ in range(2))
    assert not np.allclose(c, a) and not np.allclose(c, d)


def test_dropout_rate_scale_and_dtype():
    layer = TFXLMDropout(0.1, seed=3)
    y = to_np(layer(ops.ones([1000, 1000]), training=True))
    assert abs((y == 0).mean() - 0.1) < 0.0015  # 5 standard deviations of the dropped share
    assert set(np.unique(y).tolist()) == {0.0, float(np.float32(1 / 0.9))}
    np.testing.assert_array_equal(to_np(layer(ops.ones([3, 4]))), np.ones([3, 4]))  # not training: identity
    half = TFXLMDropout(0.5, dtype="mixed_float16")(ops.ones([64, 64], "float16"), training=True)
    assert keras.backend.standardize_dtype(half.dtype) == "float16"
    assert set(np.unique(to_np(half)).tolist()) == {0.0, 2.0}
    assert np.all(to_np(TFXLMDropout(1.0)(ops.ones([2, 3]), training=True)) == 0)
    with pytest.raises(ValueError, match="noise_shape"):
        TFXLMDropout(0.1, noise_shape=(1, 4))


def test_causal_model_with_attention_mask_and_lengths():
    """transformers' TF get_masks raises here; ours equals the PyTorch reference (see the parity tests)."""
    config = tiny_config("causal")
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    with_mask = model(inputs["input_ids"], attention_mask=inputs["attention_mask"], output_attentions=True)
    with_lengths = model(inputs["input_ids"], lengths=inputs["lengths"])
    np.testing.assert_allclose(to_np(with_mask.last_hidden_state), to_np(with_lengths.last_hidden_state), atol=1e-6)
    weights = to_np(with_mask.attentions[0])
    assert np.all(weights[:, :, np.triu_indices(inputs["input_ids"].shape[1], 1)[0], np.triu_indices(inputs["input_ids"].shape[1], 1)[1]] == 0)
    # a prefix's states do not depend on what follows
    short = model(inputs["input_ids"][:1, :5], lengths=np.array([5]))
    np.testing.assert_allclose(to_np(short.last_hidden_state), to_np(with_lengths.last_hidden_state)[:1, :5], atol=1e-5)


def test_incremental_cache_equals_full_recomputation():
    config = tiny_config("causal")
    model = TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config, pad=False)
    ids, langs = inputs["input_ids"], inputs["langs"]
    full = to_np(model(ids, langs=langs).logits)
    cache = TFXLMCache()
    pieces = []
    for end in (4, 5, 8, ids.shape[1]):
        out = model(ids[:, :end], langs=langs[:, :end], cache=cache)
        pieces.append(to_np(out.logits))
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
    weights = to_np(out.attentions[0])
    assert np.all(weights[:, 1] == 0)
    np.testing.assert_allclose(weights[:, 0], to_np(plain.attentions[0])[:, 0], atol=1e-6)
    same_everywhere = model(inputs, head_mask=np.ones(config.n_heads, np.float32))
    np.testing.assert_allclose(to_np(same_everywhere.last_hidden_state), to_np(plain.last_hidden_state), atol=1e-6)
    with pytest.raises(ValueError, match=r"head_mask has shape \[3\]"):
        model(inputs, head_mask=np.ones(3, np.float32))


def test_inputs_embeds_equal_input_ids():
    config = tiny_config()
    model = TFXLMModel(config)
    inputs = make_inputs(config)
    embeds = ops.take(model.get_input_embeddings().weight, inputs["input_ids"], axis=0)
    a = model(inputs["input_ids"], attention_mask=inputs["attention_mask"])
    b = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    np.testing.assert_allclose(to_np(a.last_hidden_state), to_np(b.last_hidden_state), atol=1e-6)


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
        assert keras.backend.standardize_dtype(out.hidden_states[-1].dtype) == policy.split("_")[1]
        for key, value in to_numpy(out).items():
            for array in value if isinstance(value, tuple) else (value,):
                assert np.isfinite(array.astype(np.float32)).all(), f"{policy} {architecture} {key}"
        if architecture == "XLMModel":
            reference = MODEL_CLASSES[architecture](config)
            reference.load_state_dict(model.state_dict())
            expected = to_np(reference(inputs).last_hidden_state)
            np.testing.assert_allclose(to_np(out.last_hidden_state).astype(np.float32), expected, atol=0.1)
    weights = to_np(out.attentions[0]).astype(np.float32)  # the padded row attends uniformly, no NaN
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
    np.testing.assert_allclose(out.cls_logits, to_np(model(inputs).cls_logits), atol=1e-5)


def test_functional_api():
    config = tiny_config()
    model = MODEL_CLASSES["XLMForSequenceClassification"](config)
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    out = model(ids, output_hidden_states=True)
    assert list(out.keys()) == ["logits", "hidden_states"]
    wrapped = keras.Model(ids, keras.layers.Activation("softmax")(out.logits))
    inputs = make_inputs(config, pad=False)["input_ids"]
    expected = ops.softmax(model(inputs).logits)
    np.testing.assert_allclose(to_np(wrapped(inputs)), to_np(expected), atol=1e-6)


def test_lora_dense_layers_take_keras_own_path():
    config = tiny_config()
    model = TFXLMModel(config)
    inputs = make_inputs(config, pad=False)["input_ids"]
    before = to_np(model(inputs).last_hidden_state)
    attention = model.transformer.attentions[0]
    attention.q_lin.enable_lora(2)
    # LoRA's B starts at zero: the outputs are unchanged until it is trained ...
    np.testing.assert_allclose(to_np(model(inputs).last_hidden_state), before, atol=1e-6)
    attention.q_lin.lora_kernel_b.assign(np.ones(attention.q_lin.lora_kernel_b.shape, "float32"))
    # ... and then they move, which they would not if our matmul ignored the adapters
    assert np.abs(to_np(model(inputs).last_hidden_state) - before).max() > 1e-3


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_embeddings_as_the_pytorch_twin(architecture):
    """get_output_embeddings(): the word-embedding layer for the LM head, None for every other class
    (as XLMPreTrainedModel's)."""
    model = MODEL_CLASSES[architecture](tiny_config())
    expected = model.get_input_embeddings() if architecture == "XLMWithLMHeadModel" else None
    assert model.get_output_embeddings() is expected



def test_load_state_dict_copies_the_arrays():
    """JAX on CPU may alias a numpy buffer: the model must not change when the caller's arrays do."""
    config = tiny_config()
    model, other = TFXLMModel(config), TFXLMModel(config)
    inputs = make_inputs(config)
    state = {k: np.array(v) for k, v in other.state_dict().items()}
    model.load_state_dict(state)
    before = to_np(model(inputs).last_hidden_state)
    for value in state.values():
        value *= 2.0
    # (TensorFlow's second call runs the traced graph: last-bit differences, not a doubled table's)
    np.testing.assert_allclose(to_np(model(inputs).last_hidden_state), before, atol=1e-6)


def test_pipelines_with_a_keras_model_equal_the_pytorch_twins():
    """xlm.pipeline on the default model's tokenizer: feature vectors and fill-mask candidates of the Keras
    model on this backend equal those of the PyTorch twin on the same weights."""
    torch = pytest.importorskip("torch")
    from pathlib import Path

    import xlm.torch_backend as pt

    directory = str(Path(xlm.__file__).parent / "data" / "default_model")
    tokenizer = xlm.XLMTokenizer.from_pretrained(directory)
    twin = pt.XLMWithLMHeadModel.from_pretrained(directory).eval()
    model = TFXLMWithLMHeadModel.from_pretrained(directory)
    texts = ["Click the button to save the document.", "Öffnen Sie die Datei.", "Où est la bibliothèque ?"]
    masked = [f"Click the {tokenizer.mask_token} to save.", f"Öffnen Sie die {tokenizer.mask_token}."]
    with torch.no_grad():
        for task, inputs, options in (("feature-extraction", texts, {}), ("fill-mask", masked, {"top_k": 3})):
            theirs = xlm.pipeline(task, model=twin, tokenizer=tokenizer, **options)(inputs)
            ours = xlm.pipeline(task, model=model, tokenizer=tokenizer, **options)(inputs)
            for a, b in zip(ours, theirs):
                if task == "feature-extraction":
                    np.testing.assert_allclose(a, b, atol=1e-5)
                else:
                    assert [c["token"] for c in a] == [c["token"] for c in b]
                    np.testing.assert_allclose([c["score"] for c in a], [c["score"] for c in b], atol=1e-5)


def test_keras_checkpoints_v0():
    """.keras and .weights.h5 files saved before the Keras layer names changed (tests/data/keras_v0) load on
    this backend and give the logits they gave then."""
    from pathlib import Path

    data = Path(__file__).parents[1] / "data" / "keras_v0"
    saved = dict(np.load(data / "lm_expected.npz"))
    expected = saved.pop("logits")
    loaded = keras.models.load_model(data / "lm.keras")
    assert type(loaded) is TFXLMWithLMHeadModel
    np.testing.assert_allclose(to_np(loaded(saved).logits), expected, atol=1e-6)
    fresh = TFXLMWithLMHeadModel(tiny_config("asm", n_layers=2, vocab_size=99, emb_dim=16, n_heads=2))
    fresh.load_weights(data / "lm.weights.h5")
    np.testing.assert_allclose(to_np(fresh(saved).logits), expected, atol=1e-6)
    assert fresh.state_dict().keys() == loaded.state_dict().keys()
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value, err_msg=name)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.jit")
def test_shape_errors_under_jax_jit_raise_the_eager_messages():
    """Under jax.jit shapes are known when tracing: the same ValueErrors; ids are values, unknown there
    (the checks' docstring says so), so an out-of-range id is not caught under jit."""
    import jax

    model = TFXLMModel(tiny_config("multilang"))
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    run = jax.jit(lambda state, inputs: model.stateless_call(*state, **inputs)[0].last_hidden_state)
    ok = np.array([[5, 6, 7]])
    assert run(state, {"input_ids": ok}).shape == (1, 3, 32)
    for inputs, message in (
        ({"input_ids": ok, "attention_mask": np.ones((1, 2))}, "attention_mask has shape [1, 2] but input_ids has shape [1, 3]"),
        ({"input_ids": np.full((1, 65), 5)}, "sequence length 65 exceeds max_position_embeddings = 64"),
        ({"input_ids": ok, "langs": np.zeros((2, 3), np.int32)}, "langs has shape [2, 3] but input_ids has shape [1, 3]"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            run(state, inputs)
    assert run(state, {"input_ids": np.array([[5, 99, 7]])}).shape == (1, 3, 32)


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="export runs on TensorFlow")
def test_export_says_it_needs_tensorflow(tmp_path):
    model = TFXLMModel(tiny_config())
    with pytest.raises(RuntimeError, match="the serving signature \\(SavedModel export\\) needs Keras on TensorFlow"):
        model.export(str(tmp_path / "served"))
