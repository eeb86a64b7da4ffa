"""from_pretrained / save_pretrained of the Keras models: transformers' tf_model.h5 files load here,
transformers' TF and PyTorch classes load what we write, PyTorch checkpoints load directly, and bad
checkpoints are reported weight by weight."""

import json
import os

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from tf_helpers import arch_inputs, hf_tf_supports, load_into_hf_tf, to_np, to_numpy  # noqa: E402

tf = pytest.importorskip("tensorflow")  # transformers' TF classes (tf-keras), whatever backend Keras 3 runs on
from xlm_testing import tiny_config, transformers_config  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES, TFXLMForSequenceClassification, TFXLMModel, TFXLMWithLMHeadModel  # noqa: E402
from xlm.weights import WeightMismatchError  # noqa: E402

pytestmark = pytest.mark.keras_backends
FLAGS = dict(output_hidden_states=True)
TF_ARCHITECTURES = [a for a in MODEL_CLASSES if a != "XLMForQuestionAnswering"]


def assert_same_outputs(ours, theirs, keys=None, atol=1e-5):
    ours, theirs = to_numpy(ours), to_numpy(theirs)
    for key in keys or [k for k in ours if k in theirs]:
        a, b = ours[key], theirs[key]
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_allclose(x, y, atol=atol, err_msg=key)


def transformers_tf_model(config, architecture):
    hf_config = transformers_config(config)
    hf_config.initializer_range = 0.02  # TFXLMForMultipleChoice needs it
    model = getattr(transformers, "TF" + architecture)(hf_config)
    model(model.dummy_inputs)
    return model


@pytest.mark.parametrize("architecture", TF_ARCHITECTURES)
def test_loads_a_tf_model_h5_written_by_transformers(architecture, tmp_path):
    config = tiny_config("multilang")
    theirs = transformers_tf_model(config, architecture)
    theirs.save_pretrained(tmp_path)
    assert os.path.isfile(tmp_path / "tf_model.h5")
    ours = MODEL_CLASSES[architecture].from_pretrained(tmp_path)
    inputs = arch_inputs(config, architecture)
    assert_same_outputs(ours(inputs, **FLAGS), theirs({k: tf.constant(v) for k, v in inputs.items()}, **FLAGS))


@pytest.mark.parametrize("architecture", TF_ARCHITECTURES)
def test_transformers_tf_loads_what_we_save(architecture, tmp_path):
    config = tiny_config("multilang")
    ours = MODEL_CLASSES[architecture](config)
    written = ours.save_pretrained(tmp_path)
    assert sorted(os.path.basename(f) for f in written) == ["config.json", "tf_model.h5"]
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [architecture]
    # transformers' TFXLMForMultipleChoice reads initializer_range, which XLM configs lack (its bug)
    hf_config = transformers.XLMConfig.from_pretrained(tmp_path)
    hf_config.initializer_range = 0.02
    theirs = getattr(transformers, "TF" + architecture).from_pretrained(tmp_path, config=hf_config)
    inputs = arch_inputs(config, architecture)
    assert_same_outputs(ours(inputs, **FLAGS), theirs({k: tf.constant(v) for k, v in inputs.items()}, **FLAGS))


@pytest.mark.parametrize("architecture", list(MODEL_CLASSES))
def test_pytorch_loads_our_safetensors_and_we_load_theirs(architecture, tmp_path):
    torch = pytest.importorskip("torch")
    config = tiny_config("asm" if architecture == "XLMWithLMHeadModel" else "sinusoidal")
    ours = MODEL_CLASSES[architecture](config)
    written = ours.save_pretrained(tmp_path / "ours", safe_serialization=True)
    assert {"config.json", "tf_model.h5", "model.safetensors"} == {os.path.basename(f) for f in written}
    theirs = getattr(transformers, architecture).from_pretrained(tmp_path / "ours").eval()
    inputs = arch_inputs(config, architecture, pad=False)
    expected = ours(inputs, **FLAGS)
    if not (architecture == "XLMWithLMHeadModel" and config.asm):  # transformers' asm head crashes on 3-D input
        with torch.no_grad():
            got = theirs(**{k: torch.from_numpy(v) for k, v in inputs.items()}, **FLAGS)
        assert_same_outputs(expected, {k: v for k, v in got.items()})
    # and back: both PyTorch formats transformers writes load here
    for safe in (True, False):
        directory = tmp_path / f"theirs_{safe}"
        theirs.save_pretrained(directory, safe_serialization=safe)
        again = MODEL_CLASSES[architecture].from_pretrained(directory)
        assert_same_outputs(again(inputs, **FLAGS), expected, atol=1e-6)


def test_our_h5_holds_the_heads_transformers_tf_lacks(tmp_path):
    for variant, architecture in (("asm", "XLMWithLMHeadModel"), ("default", "XLMForQuestionAnswering")):
        config = tiny_config(variant)
        ours = MODEL_CLASSES[architecture](config)
        ours.save_pretrained(tmp_path / architecture)
        again = MODEL_CLASSES[architecture].from_pretrained(tmp_path / architecture)
        inputs = arch_inputs(config, architecture, pad=False)
        assert_same_outputs(again(inputs), ours(inputs), atol=0)


def test_from_pretrained_overrides_and_dtype(tmp_path):
    config = tiny_config()
    TFXLMModel(config).save_pretrained(tmp_path)
    model = TFXLMForSequenceClassification.from_pretrained(tmp_path, num_labels=3, dtype="mixed_bfloat16")
    assert model.config.num_labels == 3 and model.dtype_policy.name == "mixed_bfloat16"
    assert model(arch_inputs(config, "XLMModel")).logits.shape == (3, 3)


def test_base_checkpoint_into_a_head_and_mismatches(tmp_path):
    config = tiny_config()
    TFXLMModel(config).save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="freshly initialised"):
        TFXLMWithLMHeadModel.from_pretrained(tmp_path / "base")
    bigger = tiny_config(emb_dim=64)
    with pytest.raises(WeightMismatchError, match=r"transformer\.embeddings\.weight has shape \[99, 32\], the model needs \[99, 64\]"):
        TFXLMWithLMHeadModel.from_pretrained(tmp_path / "base", config=bigger)
    more_layers = tiny_config(n_layers=3)
    with pytest.raises(WeightMismatchError, match=r"missing \(\d+\): .*attentions\.2\.q_lin\.weight"):
        TFXLMModel.from_pretrained(tmp_path / "base", config=more_layers)
    fewer_layers = tiny_config(n_layers=1)
    with pytest.raises(WeightMismatchError, match=r"unexpected \(\d+\): .*attentions(\.1\.q_lin\.weight|_\._1\/q_lin\/kernel)"):
        TFXLMModel.from_pretrained(tmp_path / "base", config=fewer_layers)


def test_transformers_tf_and_ours_agree_on_causal_models(tmp_path):
    """transformers' TF causal model cannot even be loaded by its from_pretrained (its dummy inputs
    carry an attention_mask); ours loads its weights and equals it on inputs it can run."""
    config = tiny_config("causal")
    ours = TFXLMWithLMHeadModel(config)
    theirs = getattr(transformers, "TFXLMWithLMHeadModel")(transformers_config(config))
    inputs = arch_inputs(config, "XLMWithLMHeadModel", mode="lengths")
    assert not hf_tf_supports(config, "XLMWithLMHeadModel", "attention_mask")
    theirs({k: tf.constant(v) for k, v in inputs.items()})
    load_into_hf_tf(theirs, ours.state_dict(), config, "XLMWithLMHeadModel")
    assert_same_outputs(ours(inputs), theirs({k: tf.constant(v) for k, v in inputs.items()}))


def test_safetensors_load_without_torch(tmp_path, monkeypatch):
    import sys

    import keras

    if keras.backend.backend() == "torch":
        pytest.skip("Keras runs on torch here")
    config = tiny_config()
    model = TFXLMWithLMHeadModel(config)
    model.save_pretrained(tmp_path, safe_serialization=True)
    os.remove(tmp_path / "tf_model.h5")  # only model.safetensors left
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError):
        import torch  # noqa: F401
    loaded = TFXLMWithLMHeadModel.from_pretrained(tmp_path)
    inputs = arch_inputs(config, "XLMWithLMHeadModel")
    assert_same_outputs(loaded(inputs), model(inputs), atol=0)


def test_untied_output_projection_is_refused():
    """The Keras LM head always reads the word embeddings (as transformers' TF port): a config that
    unties them is refused at construction, naming the weight."""
    config = tiny_config("multilang", tie_word_embeddings=False)
    with pytest.raises(ValueError, match=r"tie_word_embeddings=False.*pred_layer\.proj\.weight"):
        TFXLMWithLMHeadModel(config)


def test_from_pretrained_options_as_transformers(tmp_path):
    """As in the PyTorch stack: a misspelt keyword is a TypeError, transformers' no-op options pass,
    output_loading_info returns the dict, ignore_mismatched_sizes re-initialises a classifier."""
    config = tiny_config()
    two = TFXLMForSequenceClassification(config)  # 2 labels
    two.save_pretrained(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword arguments: num_label"):
        TFXLMForSequenceClassification.from_pretrained(tmp_path, num_label=5)
    with pytest.raises(WeightMismatchError, match=r"sequence_summary.summary.weight has shape \[2, 32\]"):
        TFXLMForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.warns(UserWarning, match=r"another shape.*sequence_summary.summary.weight \(checkpoint \[2, 32\]"):
        five, info = TFXLMForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True, from_pt=True
        )
    assert sorted(info["mismatched_keys"]) == [
        ("sequence_summary.summary.bias", (2,), (5,)),
        ("sequence_summary.summary.weight", (2, 32), (5, 32)),
    ]
    assert info["missing_keys"] == info["unexpected_keys"] == info["error_msgs"] == []
    inputs = arch_inputs(config, "XLMModel")
    assert five(inputs).logits.shape == (3, 5)
    expected, actual = two.transformer(**inputs).last_hidden_state, five.transformer(**inputs).last_hidden_state
    np.testing.assert_array_equal(to_np(actual), to_np(expected))


@pytest.mark.tf_only
@pytest.mark.parametrize("architecture", ["XLMForSequenceClassification", "XLMForMultipleChoice"])
def test_export_serves_without_an_input_signature(tmp_path, architecture):
    """model.export(dir) works as is (Keras cannot infer inputs for a model built in __init__): the
    SavedModel's serve endpoint and serving_default signature take transformers' int32 inputs."""
    config = tiny_config("multilang")
    model = MODEL_CLASSES[architecture](config)
    model.export(str(tmp_path / "served"), verbose=False)
    inputs = arch_inputs(config, architecture)
    feed = {name: tf.constant(to_np(inputs[name]), tf.int32)
            for name in ("input_ids", "attention_mask", "langs", "token_type_ids")}
    expected = to_np(model(feed).logits)
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(to_np(served.serve(feed)["logits"]), expected, atol=1e-5)
    signature = served.signatures["serving_default"]
    assert sorted(spec.shape.rank for spec in signature.structured_input_signature[1].values()) == [
        model.input_rank
    ] * 4

