"""from_pretrained / save_pretrained: directories written by transformers load here, and back."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
import transformers
from torch_parity import ARCHITECTURES, assert_outputs_close, model_pair, torch_inputs

import xlm.torch_backend as ours
from xlm import checkpoint
from xlm.weights import WeightMismatchError

CASES = [("multilang", a) for a in ARCHITECTURES] + [
    ("sinusoidal", "XLMWithLMHeadModel"),
    ("causal", "XLMWithLMHeadModel"),
    ("asm", "XLMWithLMHeadModel"),
]


def inputs_for(config, architecture: str) -> dict:
    inputs = torch_inputs(config, batch=4)
    kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "langs", "token_type_ids")}
    if architecture == "XLMForMultipleChoice":
        kwargs = {k: v.view(2, 2, -1) for k, v in kwargs.items()}
    return kwargs


def outputs(model, architecture: str) -> dict:
    """Outputs to compare (asm LM: ours only, as transformers' head cannot run on 3-D input)."""
    kwargs = inputs_for(model.config, architecture)
    with torch.no_grad():
        is_reference = isinstance(model, transformers.PreTrainedModel)
        if is_reference and model.config.asm and architecture == "XLMWithLMHeadModel":
            hidden = model.transformer(**kwargs)[0]
            logits = model.pred_layer.proj.log_prob(hidden.reshape(-1, hidden.shape[-1]))
            return {"logits": logits.view(*hidden.shape[:2], -1)}
        return dict(model(**kwargs).items())


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize(("variant", "architecture"), CASES)
def test_loads_transformers_directory(tmp_path, variant, architecture, safe_serialization):
    reference, _ = model_pair(variant, architecture)
    reference.save_pretrained(tmp_path, safe_serialization=safe_serialization)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete checkpoint loads without any warning
        model = getattr(ours, architecture).from_pretrained(tmp_path)
    assert not model.training
    for field in ("vocab_size", "emb_dim", "n_layers", "n_heads", "n_langs", "causal", "asm", "sinusoidal_embeddings"):
        assert getattr(model.config, field) == getattr(reference.config, field), field
    assert_outputs_close(outputs(reference, architecture), outputs(model, architecture))


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize(("variant", "architecture"), CASES)
def test_transformers_loads_our_directory(tmp_path, variant, architecture, safe_serialization):
    reference, model = model_pair(variant, architecture)
    files = model.save_pretrained(tmp_path, safe_serialization=safe_serialization)
    weights_file = "model.safetensors" if safe_serialization else "pytorch_model.bin"
    assert sorted(os.path.basename(f) for f in files) == sorted(["config.json", weights_file])
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [architecture]
    loaded = getattr(transformers, architecture).from_pretrained(tmp_path).eval()
    assert_outputs_close(outputs(model, architecture), outputs(loaded, architecture))
    again = getattr(ours, architecture).from_pretrained(tmp_path)
    assert_outputs_close(outputs(model, architecture), outputs(again, architecture), tolerance=0.0)


def test_sharded_round_trip(tmp_path):
    reference, model = model_pair("multilang", "XLMWithLMHeadModel")
    files = model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert any(f.endswith("model.safetensors.index.json") for f in files)
    again = ours.XLMWithLMHeadModel.from_pretrained(tmp_path)
    assert_outputs_close(outputs(model, "XLMWithLMHeadModel"), outputs(again, "XLMWithLMHeadModel"), tolerance=0.0)
    loaded = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path).eval()
    assert_outputs_close(outputs(reference, "XLMWithLMHeadModel"), outputs(loaded, "XLMWithLMHeadModel"))


def test_tf_h5_checkpoint_loads_without_tensorflow(tmp_path):
    _, model = model_pair("multilang", "XLMForTokenClassification")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    checkpoint.save_state_dict(state, tmp_path, model.config, "XLMForTokenClassification", format="h5")
    model.config.save_pretrained(tmp_path)
    loaded = ours.XLMForTokenClassification.from_pretrained(tmp_path)
    expected, actual = outputs(model, "XLMForTokenClassification"), outputs(loaded, "XLMForTokenClassification")
    assert_outputs_close(expected, actual, tolerance=0.0)


def test_base_checkpoint_into_head_warns_fresh_head(tmp_path):
    reference, _ = model_pair("multilang", "XLMModel")
    reference.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="freshly initialised.*sequence_summary.summary.weight"):
        model = ours.XLMForSequenceClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        kwargs = inputs_for(model.config, "XLMModel")
        assert_outputs_close(reference(**kwargs), model.transformer(**kwargs))


def test_head_checkpoint_into_other_head_warns_unused(tmp_path):
    reference, _ = model_pair("multilang", "XLMForTokenClassification")
    reference.save_pretrained(tmp_path)
    with pytest.warns(UserWarning) as record:
        ours.XLMForQuestionAnsweringSimple.from_pretrained(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "classifier.weight" in messages and "not used" in messages
    assert "qa_outputs.weight" in messages and "freshly initialised" in messages
    with pytest.warns(UserWarning, match="another head.*classifier.bias, classifier.weight") as record:
        ours.XLMModel.from_pretrained(tmp_path)  # the base model drops the head (and says so)
    assert "freshly initialised" not in " ".join(str(w.message) for w in record)


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    reference, _ = model_pair("multilang", "XLMModel")
    reference.save_pretrained(tmp_path)
    with pytest.raises(WeightMismatchError) as info:
        ours.XLMModel.from_pretrained(tmp_path, n_langs=1)  # no language table
    assert "lang_embeddings.weight" in str(info.value)
    with pytest.raises(WeightMismatchError, match=r"embeddings.weight has shape \[99, 32\], the model needs \[120, 32"):
        ours.XLMModel.from_pretrained(tmp_path, vocab_size=120)
    state = dict(reference.state_dict())
    del state["attentions.0.q_lin.weight"]
    with pytest.raises(WeightMismatchError, match=r"missing \(1\): attentions.0.q_lin.weight"):
        ours.XLMModel.from_pretrained(tmp_path).load_weights(state)


def test_kwargs_override_config(tmp_path):
    reference, _ = model_pair("multilang", "XLMModel")
    reference.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="freshly initialised"):
        model = ours.XLMForTokenClassification.from_pretrained(tmp_path, num_labels=5)
    assert model.classifier.out_features == 5
    assert model.config.num_labels == 5


def test_unknown_name_offline_gives_a_clear_error():
    with pytest.raises(OSError, match="not reachable|not in the local cache"):
        ours.XLMModel.from_pretrained("nobody-xyz/no-such-xlm-model", local_files_only=True)
    with pytest.raises(FileNotFoundError):
        ours.XLMModel.from_pretrained("/no/such/directory/anywhere")


def test_abstract_base_class_cannot_load(tmp_path):
    with pytest.raises(TypeError, match="abstract"):
        ours.XLMPreTrainedModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "bin"])
def test_untied_output_projection_round_trips(tmp_path, safe_serialization):
    """tie_word_embeddings=False: the LM head's own projection is saved, and both libraries read it back."""
    reference, model = model_pair("multilang", "XLMWithLMHeadModel", (("tie_word_embeddings", False),))
    projection = model.pred_layer.proj.weight
    assert projection is not model.transformer.embeddings.weight
    assert not torch.equal(projection, model.transformer.embeddings.weight)
    assert torch.equal(projection, reference.pred_layer.proj.weight)
    assert_outputs_close(outputs(reference, "XLMWithLMHeadModel"), outputs(model, "XLMWithLMHeadModel"))
    model.save_pretrained(tmp_path / "ours", safe_serialization=safe_serialization)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing freshly initialised
        again = ours.XLMWithLMHeadModel.from_pretrained(tmp_path / "ours")
    assert torch.equal(again.pred_layer.proj.weight, projection)
    assert again.pred_layer.proj.weight is not again.transformer.embeddings.weight
    theirs = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path / "ours").eval()
    assert torch.equal(theirs.pred_layer.proj.weight, projection)
    reference.save_pretrained(tmp_path / "theirs", safe_serialization=safe_serialization)
    loaded = ours.XLMWithLMHeadModel.from_pretrained(tmp_path / "theirs")
    assert_outputs_close(outputs(model, "XLMWithLMHeadModel"), outputs(loaded, "XLMWithLMHeadModel"), tolerance=0.0)


def test_untied_output_projection_has_no_keras_layout(tmp_path):
    """tf_model.h5 (transformers' TF layout) always ties the projection: saving an untied head there fails
    with a message naming the weight, and writes nothing."""
    _, model = model_pair("multilang", "XLMWithLMHeadModel", (("tie_word_embeddings", False),))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"tie_word_embeddings=False.*pred_layer\.proj\.weight"):
        checkpoint.save_state_dict(state, tmp_path, model.config, "XLMWithLMHeadModel", format="h5")
    assert not list(tmp_path.iterdir())


def test_from_pretrained_options_as_transformers(tmp_path):
    """Keywords that are neither config fields nor loading options are a TypeError (not written into
    config.json); transformers' no-op options are accepted; output_loading_info, attn_implementation
    and dtype behave as transformers'."""
    reference, _ = model_pair("multilang", "XLMForSequenceClassification")
    reference.save_pretrained(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword arguments: num_label, revison"):
        ours.XLMForSequenceClassification.from_pretrained(tmp_path, revison="main", num_label=3)
    with pytest.raises(TypeError, match="config must be an xlm.XLMConfig, got transformers"):
        ours.XLMForSequenceClassification.from_pretrained(tmp_path, config=reference.config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, info = ours.XLMForSequenceClassification.from_pretrained(
            tmp_path, trust_remote_code=True, low_cpu_mem_usage=True, output_loading_info=True,
            attn_implementation="eager", dtype="float64",
        )
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert {m.attn_implementation for m in model.modules() if isinstance(m, ours.XLMMultiHeadAttention)} == {"eager"}
    assert model.dtype == torch.float64 and not hasattr(model.config, "trust_remote_code")
    model.save_pretrained(tmp_path / "again")
    assert "trust_remote_code" not in (tmp_path / "again" / "config.json").read_text()

    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    assert ours.XLMForSequenceClassification.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype 'floot16' is not a torch dtype"):
        ours.XLMForSequenceClassification.from_pretrained(tmp_path, dtype="floot16")

    base, _ = model_pair("multilang", "XLMModel")
    base.save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="freshly initialised.*sequence_summary.summary.weight"):
        _, info = ours.XLMForSequenceClassification.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert info["missing_keys"] == ["sequence_summary.summary.weight", "sequence_summary.summary.bias"]


def test_ignore_mismatched_sizes_reinitialises_a_classifier(tmp_path):
    """A classifier fine-tuned on 2 labels, loaded for 5: an error naming the weights, or with
    ignore_mismatched_sizes=True a fresh classifier, a warning and the same encoder."""
    reference, model = model_pair("multilang", "XLMForSequenceClassification")
    model.save_pretrained(tmp_path)
    with pytest.raises(WeightMismatchError, match=r"sequence_summary.summary.weight has shape \[2, 32\]"):
        ours.XLMForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    shapes = r"sequence_summary.summary.weight \(checkpoint \[2, 32\], model \[5, 32\]\)"
    with pytest.warns(UserWarning, match="another shape.*" + shapes):
        five, info = ours.XLMForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
        )
    assert five.sequence_summary.summary.out_features == 5
    assert sorted(info["mismatched_keys"]) == [
        ("sequence_summary.summary.bias", (2,), (5,)),
        ("sequence_summary.summary.weight", (2, 32), (5, 32)),
    ]
    kwargs = inputs_for(model.config, "XLMModel")
    with torch.no_grad():
        assert_outputs_close(model.transformer(**kwargs), five.transformer(**kwargs), tolerance=0.0)
