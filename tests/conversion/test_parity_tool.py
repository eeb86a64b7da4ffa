"""The parity cross-check: both stacks on the same inputs, report, JSON, plot and exit status."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conversion import convert_checkpoint
from conversion.__main__ import DEFAULT_MODEL, main
from conversion.parity import compare_outputs, make_inputs, run_parity
from conversion_helpers import write_model_dir
from xlm import XLMConfig
from xlm.checkpoint import load_state_dict, save_state_dict
from xlm.weights import ARCHITECTURES
from xlm_testing import tiny_config


def test_bundled_model_is_small_complete_and_trained():
    names = sorted(os.listdir(DEFAULT_MODEL))
    for required in ("config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
                     "README.md", "loss_curve.png", "training_args.json", "training_log.jsonl"):
        assert required in names
    size = sum(os.path.getsize(os.path.join(DEFAULT_MODEL, n)) for n in names)
    assert size <= 10 * 2**20
    config = XLMConfig.from_pretrained(DEFAULT_MODEL)
    assert config.architectures == ["XLMWithLMHeadModel"] and config.lang2id == {"de": 0, "en": 1, "fr": 2}
    assert 2 <= config.n_layers <= 4 and 128 <= config.emb_dim <= 256 and 7000 < config.vocab_size < 9000
    with open(os.path.join(DEFAULT_MODEL, "training_args.json"), encoding="utf-8") as f:
        trained = json.load(f)
    # the model card's claim: held-out masked-token accuracy clearly above the unigram baseline
    assert trained["eval_accuracy"] > 2 * trained["unigram_baseline_accuracy"] > 0
    card = open(os.path.join(DEFAULT_MODEL, "README.md"), encoding="utf-8").read()
    assert f"{trained['eval_accuracy']:.1%}" in card and f"{trained['unigram_baseline_accuracy']:.1%}" in card


def test_the_demo_sentences_have_one_mask_each_in_every_language():
    from conversion.fill_mask_demo import DEMO_SENTENCES

    assert {lang for lang, _ in DEMO_SENTENCES} == {"de", "en", "fr"}
    assert all(text.count("<mask>") == 1 for _, text in DEMO_SENTENCES)


def test_sample_inputs_use_languages_pairs_and_padding():
    config = XLMConfig.from_pretrained(DEFAULT_MODEL)
    inputs = make_inputs(config, DEFAULT_MODEL)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape[0] == 6 and (mask == 0).any()  # padded rows
    assert (ids[mask == 0] == config.pad_index).all() and (ids[:, 0] == config.bos_index).all()
    assert set(np.unique(inputs["langs"][mask == 1])) == {0, 1, 2}  # de, en, fr
    pair = np.flatnonzero(inputs["token_type_ids"].any(axis=1))
    assert len(pair) == 1  # the TLM-style pair: second segment has type 1, restarted positions, French
    row = pair[0]
    second = np.flatnonzero(inputs["token_type_ids"][row] == 1)
    assert inputs["position_ids"][row, second[0]] == 0 and (inputs["langs"][row, second] == 2).all()
    unk = config.unk_index
    assert (ids != unk).all()


def test_demo_fills_masks_in_both_frameworks_converts_and_passes(tmp_path, capsys):
    from conversion.fill_mask_demo import DEMO_SENTENCES

    code = main(["--quiet", "demo", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("Keras: same tokens, same order") == len(DEMO_SENTENCES)
    assert "fill-mask top-k PASSED" in out
    assert "from safetensors to h5" in out and "PASSED" in out
    n_layers = XLMConfig.from_pretrained(DEFAULT_MODEL).n_layers
    expected = {f"hidden_states.{i}" for i in range(n_layers + 1)} | {f"attentions.{i}" for i in range(n_layers)}
    expected.add("logits")
    for name in expected:
        assert name in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True and report["requested_device"] == "cpu"
    if report["keras_backend"] == "tensorflow":
        assert report["precision"]["tf tensor_float_32_execution"] is False
    by_name = {d["name"]: d for d in report["diffs"]}
    assert set(by_name) == expected
    assert all(0 < d["max_abs"] < 1e-5 for d in by_name.values())  # honest float32 noise, not zero
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fill_mask_comparison_catches_different_predictions(monkeypatch):
    """The demo fails when the Keras side predicts other tokens (here: its LM bias is scrambled)."""
    from conversion import fill_mask_demo
    from xlm.tf_backend import TFXLMWithLMHeadModel

    original = TFXLMWithLMHeadModel.from_pretrained.__func__

    def scrambled(cls, *args, **kwargs):
        model = original(cls, *args, **kwargs)
        bias = model.pred_layer.bias
        bias.assign(np.random.default_rng(0).normal(0, 10, bias.shape).astype("float32"))
        return model

    monkeypatch.setattr(TFXLMWithLMHeadModel, "from_pretrained", classmethod(scrambled))
    comparison = fill_mask_demo.compare_fill_mask(DEFAULT_MODEL, fill_mask_demo.DEMO_SENTENCES[:3])
    assert not comparison.passed and len(comparison.mismatches) == 3
    assert "FAILED (3 of 3 sentences)" in comparison.table()


def test_a_wrong_weight_fails_parity_with_status_1(tmp_path, capsys):
    convert_checkpoint(DEFAULT_MODEL, tmp_path / "keras", quiet=True)
    config = XLMConfig.from_pretrained(DEFAULT_MODEL)
    state = load_state_dict(tmp_path / "keras", config, "XLMWithLMHeadModel")
    state["transformer.layer_norm2.1.bias"] = state["transformer.layer_norm2.1.bias"] + 1e-3
    save_state_dict(state, tmp_path / "keras", config, "XLMWithLMHeadModel", format="h5")
    code = main(["parity", DEFAULT_MODEL, str(tmp_path / "keras"), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED (" in out
    diffs = {d["name"]: d["passed"] for d in json.loads((tmp_path / "r.json").read_text())["diffs"]}
    # layer 1's output and the logits are off; everything before layer 1's second LayerNorm is not
    assert not diffs["hidden_states.2"] and not diffs["logits"]
    assert diffs["hidden_states.0"] and diffs["hidden_states.1"] and diffs["attentions.0"] and diffs["attentions.1"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_head_is_compared(architecture, tmp_path):
    variant = {"XLMWithLMHeadModel": "asm", "XLMForQuestionAnswering": "sinusoidal",
               "XLMForMultipleChoice": "causal"}.get(architecture, "multilang")
    config = tiny_config(variant, num_labels=2 if architecture == "XLMForQuestionAnsweringSimple" else 3)
    write_model_dir(tmp_path / "pt", config, architecture, scale=0.2)  # unit-variance weights saturate softmax
    convert_checkpoint(tmp_path / "pt", tmp_path / "keras", quiet=True)
    report = run_parity(tmp_path / "pt", tmp_path / "keras")
    assert report.architecture == architecture
    assert report.passed, report.table()
    names = {d.name for d in report.diffs}
    assert {"hidden_states.0", f"hidden_states.{config.n_layers}", f"attentions.{config.n_layers - 1}"} <= names
    heads = names - {n for n in names if n.startswith(("hidden_states.", "attentions."))}
    expected = {
        "XLMModel": {"last_hidden_state"},
        "XLMWithLMHeadModel": {"logits"},
        "XLMForQuestionAnswering": {"start_top_log_probs", "start_top_index", "end_top_log_probs",
                                    "end_top_index", "cls_logits"},
        "XLMForQuestionAnsweringSimple": {"start_logits", "end_logits"},
    }.get(architecture, {"logits"})
    assert heads == expected
    assert "random ids" in report.inputs["description"]


def test_compare_outputs_measures_and_judges():
    reference = {"a": np.array([1.0, -4.0], np.float32), "i": np.array([1, 2])}
    diffs = compare_outputs(reference, {"a": np.array([1.0, -4.00002], np.float32), "i": np.array([1, 3])},
                            atol=1e-5, rtol=0.0)
    a, i = diffs
    assert a.name == "a" and a.max_abs == pytest.approx(2e-5, rel=1e-2) and a.max_rel == pytest.approx(5e-6, rel=1e-2)
    assert not a.passed and not i.passed and i.mismatches == 1
    assert compare_outputs(reference, {"a": reference["a"] + 1e-6, "i": reference["i"]})[0].passed
    with pytest.raises(ValueError, match="only on one side"):
        compare_outputs(reference, {"a": reference["a"]})


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_gpu(), reason="no CUDA GPU visible to PyTorch")
def test_gpu_parity_runs_on_the_gpu_with_tf32_off():
    report = run_parity(DEFAULT_MODEL, device="gpu")
    assert report.passed, report.table()
    assert report.torch_device.startswith("cuda") and ("gpu" in report.keras_device.lower()
                                                        or report.keras_device.startswith("cuda"))
    assert report.precision["torch.backends.cuda.matmul.allow_tf32"] is False
    assert report.precision["torch.backends.cudnn.allow_tf32"] is False
    if report.keras_backend == "tensorflow":
        assert report.precision["tf tensor_float_32_execution"] is False
    if report.keras_backend == "jax":
        assert report.precision["jax_default_matmul_precision"] == "highest"
    across = run_parity(DEFAULT_MODEL, device="gpu", reference_device="cpu")  # GPU results against the CPU's
    assert across.passed, across.table()
    assert across.reference_device == "cpu" and across.torch_diffs


def test_gpu_request_without_gpu_is_a_clean_error(capsys):
    if _has_gpu():
        pytest.skip("a GPU is present")
    assert main(["parity", DEFAULT_MODEL, "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "Traceback" not in err
