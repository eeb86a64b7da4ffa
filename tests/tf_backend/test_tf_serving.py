"""TensorFlow serving of the Keras models: `tf.saved_model.save(model, dir)`, `model.export(dir)` and
`save_pretrained(dir, saved_model=True)` give signatures whose inputs are named as a TF Serving request
names them (input_ids, attention_mask, langs, token_type_ids), and the reloaded SavedModel gives the eager
model's outputs; transformers' TF SavedModel has the same input names (langs aside, which it cannot serve)."""

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

from tf_helpers import arch_inputs, to_np  # noqa: E402
from xlm_testing import tiny_config, transformers_config  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES  # noqa: E402

pytestmark = pytest.mark.tf_only
NAMES = ["attention_mask", "input_ids", "langs", "token_type_ids"]


def _feed(config, architecture: str, dtype=tf.int32, names=NAMES) -> dict:
    inputs = arch_inputs(config, architecture)
    return {name: tf.constant(to_np(inputs[name]), dtype) for name in names}


def _assert_served_equal_eager(signature, model, feed: dict) -> None:
    served = signature(**feed)
    expected = model(feed)
    keys = [key for key, value in expected.items() if value is not None]
    assert sorted(served) == sorted(keys)
    for key in keys:
        np.testing.assert_allclose(to_np(served[key]), to_np(expected[key]), atol=1e-5, err_msg=key)


def _input_names(signature) -> list[str]:
    return sorted(signature.structured_input_signature[1])


@pytest.mark.parametrize("architecture", ["XLMModel", "XLMWithLMHeadModel", "XLMForSequenceClassification",
                                          "XLMForMultipleChoice", "XLMForQuestionAnswering"])
def test_tf_saved_model_save_gives_serving_default(tmp_path, architecture):
    """tf.saved_model.save(model, dir) with no signatures: a serving_default signature with named int32
    inputs, called by name after tf.saved_model.load, gives the eager outputs."""
    config = tiny_config("multilang")
    model = MODEL_CLASSES[architecture](config)
    tf.saved_model.save(model, str(tmp_path / "served"))
    loaded = tf.saved_model.load(str(tmp_path / "served"))
    assert list(loaded.signatures) == ["serving_default"]
    signature = loaded.signatures["serving_default"]
    assert _input_names(signature) == NAMES
    _assert_served_equal_eager(signature, model, _feed(config, architecture))


@pytest.mark.parametrize("variant", ["default", "multilang"])
def test_export_names_its_inputs(tmp_path, variant):
    """model.export(dir): serving_default and serve take input_ids, attention_mask, token_type_ids (and
    langs where the model has language embeddings) by those names, not args_0 ..."""
    config = tiny_config(variant)
    model = MODEL_CLASSES["XLMForTokenClassification"](config)
    model.export(str(tmp_path / "exported"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    names = NAMES if config.uses_lang_embeddings else [n for n in NAMES if n != "langs"]
    signature = loaded.signatures["serving_default"]
    assert _input_names(signature) == names
    feed = _feed(config, "XLMForTokenClassification", names=names)
    _assert_served_equal_eager(signature, model, feed)
    np.testing.assert_allclose(to_np(loaded.serve(feed)["logits"]), to_np(model(feed).logits), atol=1e-5)


def test_save_pretrained_saved_model_as_transformers(tmp_path):
    """save_pretrained(dir, saved_model=True) writes config.json, tf_model.h5 and saved_model/1 with
    serving_default (int32) and int64_serving, as transformers' TF models do; its input names are
    transformers' (which has no langs input: its TF XLM takes them only from the language embeddings
    it cannot serve) plus langs."""
    config = tiny_config("multilang")
    model = MODEL_CLASSES["XLMForSequenceClassification"](config)
    files = model.save_pretrained(tmp_path / "ours", saved_model=True)
    saved = os.path.join(tmp_path, "ours", "saved_model", "1")
    assert files[-1] == saved and os.path.isfile(os.path.join(saved, "saved_model.pb"))
    assert sorted(os.listdir(tmp_path / "ours")) == ["config.json", "saved_model", "tf_model.h5"]
    assert os.listdir(tmp_path / "ours" / "saved_model") == ["1"]  # no staging directory left behind
    loaded = tf.saved_model.load(saved)
    assert sorted(loaded.signatures) == ["int64_serving", "serving_default"]
    _assert_served_equal_eager(loaded.signatures["serving_default"], model,
                               _feed(config, "XLMForSequenceClassification"))
    _assert_served_equal_eager(loaded.signatures["int64_serving"], model,
                               _feed(config, "XLMForSequenceClassification", tf.int64))

    reference = transformers.TFXLMForSequenceClassification(transformers_config(config))
    reference(reference.dummy_inputs)
    reference.save_pretrained(str(tmp_path / "theirs"), saved_model=True)
    theirs = tf.saved_model.load(str(tmp_path / "theirs" / "saved_model" / "1"))
    assert sorted(theirs.signatures) == sorted(loaded.signatures)
    for name in theirs.signatures:
        assert _input_names(loaded.signatures[name]) == sorted([*_input_names(theirs.signatures[name]), "langs"])
        assert sorted(loaded.signatures[name].structured_outputs) == sorted(theirs.signatures[name].structured_outputs)

    model.save_pretrained(tmp_path / "ours", saved_model=True, version=2)  # TF Serving's next version
    assert sorted(os.listdir(tmp_path / "ours" / "saved_model")) == ["1", "2"]
