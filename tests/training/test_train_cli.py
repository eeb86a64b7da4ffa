"""xlm-train (xlm.train_cli): pretrain with Keras, load in both frameworks, fine-tune with PyTorch."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")

from xlm.train_cli import main  # noqa: E402
from xlm.training_data import default_corpus_path  # noqa: E402


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.err


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny model pretrained by `xlm-train pretrain --framework keras` with a BPE vocabulary it learned."""
    out = tmp_path_factory.mktemp("cli") / "pretrained"
    status = main([
        "pretrain", "--framework", "keras", "--data", default_corpus_path(), "--limit", "80", "--learn-bpe", "300",
        "--objective", "mlm+tlm", "--model-size", "tiny", "--bptt", "32", "--batch-size", "4", "--steps", "3",
        "--eval-fraction", "0.3",
        "--output", str(out), "--quiet",
    ])
    assert status == 0
    return out


def test_pretrain_writes_a_directory_both_frameworks_load(pretrained):
    from xlm.tf_backend import TFXLMWithLMHeadModel
    from xlm.tokenizer import XLMTokenizer
    from xlm.torch_backend import XLMWithLMHeadModel

    names = set(os.listdir(pretrained))
    assert {"config.json", "tf_model.h5", "vocab.json", "merges.txt", "training_log.jsonl", "training_args.json"} <= names
    steps = [json.loads(line)["step"] for line in (pretrained / "training_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    tokenizer = XLMTokenizer.from_pretrained(pretrained)
    assert tokenizer.lang2id == {"de": 0, "en": 1, "fr": 2}
    batch = tokenizer(["Das ist ein Test.", "Ceci est un essai."], lang="fr", padding=True, return_tensors="np")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "langs": batch["langs"]}
    torch_model = XLMWithLMHeadModel.from_pretrained(pretrained)
    assert torch_model.config.n_langs == 3 and torch_model.config.vocab_size == len(tokenizer)
    with torch.no_grad():
        expected = torch_model(**{k: torch.as_tensor(v) for k, v in inputs.items()}).logits.numpy()
    keras_model = TFXLMWithLMHeadModel.from_pretrained(pretrained)
    got = np.asarray(keras_model({k: v.astype(np.int32) for k, v in inputs.items()}, training=False).logits)
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # Held-out masked-token accuracy against the unigram baseline, the same in both frameworks.
    args = json.loads((pretrained / "training_args.json").read_text())
    assert args["eval_objective"] == "mlm" and args["eval_targets"] > 0 and args["eval_segments"] > 0
    assert 0.0 <= args["eval_accuracy"] <= 1.0 and 0.0 < args["unigram_baseline_accuracy"] < 1.0
    from xlm.tf_backend.training import evaluate as keras_evaluate
    from xlm.torch_backend.training import evaluate as torch_evaluate
    from xlm.training_data import TokenIds, encode_sentences, pretraining_batches, read_parallel_corpus

    corpus = read_parallel_corpus(default_corpus_path(), limit=20)
    encoded = {lang: encode_sentences(tokenizer, corpus.texts[lang], lang) for lang in corpus.languages}
    batches = pretraining_batches(encoded, "mlm+tlm", tokenizer.lang2id, TokenIds.from_config(torch_model.config), 4, bptt=32)
    sample = [batches[i] for i in range(4)]
    on_torch, on_keras = torch_evaluate(torch_model, sample), keras_evaluate(keras_model, sample)
    assert on_torch["targets"] == on_keras["targets"] > 0 and on_torch["accuracy"] == on_keras["accuracy"]
    assert abs(on_torch["loss"] - on_keras["loss"]) < 1e-5


@pytest.mark.filterwarnings("ignore:XLMForSequenceClassification from")  # LM head dropped, classifier head new
def test_finetune_with_torch_then_load_in_keras(pretrained, tmp_path, capsys):
    from xlm.tf_backend import TFXLMForSequenceClassification
    from xlm.torch_backend import XLMForSequenceClassification

    out = tmp_path / "pairs"
    status, err = _run(capsys, "finetune", "--framework", "torch", "--model", pretrained, "--data", default_corpus_path(),
                       "--limit", "60", "--languages", "en,fr", "--steps", "4", "--batch-size", "4",
                       "--accumulation-steps", "2", "--output", out, "--quiet")
    assert status == 0, err
    args = json.loads((out / "training_args.json").read_text())
    assert args["final_step"] == 4 and 0.0 <= args["eval_accuracy"] <= 1.0 and args["eval_pairs"] > 0
    torch_model = XLMForSequenceClassification.from_pretrained(out)
    assert torch_model.config.id2label == {0: "not_translation", 1: "translation"}
    keras_model = TFXLMForSequenceClassification.from_pretrained(out)
    ids = np.array([[0, 20, 30, 40, 1, 50, 60, 1]])
    with torch.no_grad():
        expected = torch_model(input_ids=torch.as_tensor(ids)).logits.numpy()
    got = np.asarray(keras_model({"input_ids": ids.astype(np.int32)}, training=False).logits)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_errors_are_one_line(pretrained, tmp_path, capsys):
    status, err = _run(capsys, "finetune", "--framework", "torch", "--model", pretrained, "--data", tmp_path / "missing.tsv",
                       "--steps", "1", "--output", tmp_path / "x")
    assert status == 1 and "no corpus file" in err and "Traceback" not in err
    status, err = _run(capsys, "pretrain", "--framework", "torch", "--data", default_corpus_path(), "--limit", "20",
                       "--tokenizer", pretrained, "--steps", "1", "--output", pretrained, "--quiet")
    assert status == 1 and "already exists" in err
    status, err = _run(capsys, "pretrain", "--framework", "torch", "--data", default_corpus_path(), "--limit", "20",
                       "--tokenizer", pretrained, "--model-size", "tiny", "--n-heads", "5", "--steps", "1",
                       "--output", tmp_path / "y", "--quiet")
    assert status == 1 and "divisible by n_heads" in err and not (tmp_path / "y").exists()


def test_keras_pretraining_with_xla_follows_the_plain_run(pretrained, tmp_path, capsys):
    common = ["pretrain", "--framework", "keras", "--data", default_corpus_path(), "--limit", "60",
              "--tokenizer", pretrained, "--objective", "mlm", "--model-size", "tiny", "--bptt", "32",
              "--batch-size", "4", "--steps", "3", "--dropout", "0", "--quiet"]
    losses = {}
    for name, extra in (("plain", []), ("xla", ["--xla"])):
        status, err = _run(capsys, *common, *extra, "--output", tmp_path / name)
        assert status == 0, err
        log = (tmp_path / name / "training_log.jsonl").read_text().splitlines()
        losses[name] = [json.loads(line)["loss"] for line in log]
    assert len(losses["xla"]) == 3
    # same seed, same batches, no dropout (XLA draws other dropout masks): the same losses up to
    # float rounding; later steps drift a little, as XLA fuses the update differently
    assert abs(losses["xla"][0] - losses["plain"][0]) < 1e-4, losses
    assert np.allclose(losses["xla"], losses["plain"], atol=1e-3), losses
    status, err = _run(capsys, *common[:2], "torch", *common[3:], "--xla", "--output", tmp_path / "t")
    assert status == 1 and "--xla are for --framework keras" in err
