"""Original facebookresearch/XLM .pth checkpoints -> model directories (synthetic checkpoints in that format)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import transformers

from conversion.original import (
    UnsupportedCheckpointError,
    convert_original_checkpoint,
    dictionary_from_vocab,
    load_original_checkpoint,
    original_vocab,
)
from conversion_helpers import (
    leftovers,
    original_config,
    original_dictionary,
    tiny_bpe,
    write_codes,
    write_original_checkpoint,
)
from xlm.checkpoint import CheckpointError
from xlm.weights import WeightMismatchError
from xlm_testing import transformers_config

TEXT = ["the cats sat on the log .", "les chiens sont assis ."]


@pytest.fixture(scope="module")
def bpe():
    vocab, merges = tiny_bpe()
    return vocab, merges, original_dictionary(vocab)


@pytest.fixture(scope="module")
def reference(bpe):
    """A transformers model with random weights, and its original-format checkpoint."""
    vocab, merges, word2id = bpe
    config = original_config(len(vocab))
    torch.manual_seed(0)
    model = transformers.XLMWithLMHeadModel(transformers_config(config)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return config, model


def _ids_and_langs(tokenizer, config):
    rows = [tokenizer.encode(t) for t in TEXT]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), config.pad_index)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    langs = torch.tensor([[0] * length, [1] * length])
    return ids, (ids != config.pad_index).long(), langs


@pytest.mark.parametrize("params_as,prefix,legacy", [("dict", "module.", False), ("namespace", "", True)])
def test_original_checkpoint_converts_to_a_complete_directory(params_as, prefix, legacy, bpe, reference, tmp_path):
    vocab, merges, word2id = bpe
    config, model = reference
    write_original_checkpoint(tmp_path / "mlm.pth", model.state_dict(), config, word2id,
                              params_as=params_as, prefix=prefix, legacy_format=legacy)
    write_codes(tmp_path / "codes", merges)
    out = convert_original_checkpoint(tmp_path / "mlm.pth", tmp_path / "out", tmp_path / "codes")
    assert sorted(os.listdir(out)) == ["config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
                                       "tokenizer_config.json", "vocab.json"]
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["lang2id"] == {"en": 0, "fr": 1} and saved["id2lang"] == {"0": "en", "1": "fr"}
    assert saved["architectures"] == ["XLMWithLMHeadModel"] and saved["causal"] is False
    assert saved["n_langs"] == 2 and saved["vocab_size"] == len(vocab) and saved["max_position_embeddings"] == 64

    # tokenizer files round-trip: vocab.json is the BPE vocabulary, merges.txt the codes, and the
    # dictionary comes back from vocab.json
    assert json.loads((tmp_path / "out" / "vocab.json").read_text()) == vocab
    assert [tuple(line.split()) for line in (tmp_path / "out" / "merges.txt").read_text().splitlines()] == merges
    assert dictionary_from_vocab(vocab) == word2id
    theirs = transformers.XLMTokenizer.from_pretrained(out)
    from xlm.tokenizer import XLMTokenizer

    ours = XLMTokenizer.from_pretrained(out)
    # the model was trained on the original scripts' tokens: the directory says so (and on these
    # already-tokenized lowercase texts both orders agree with transformers)
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["preprocessing"] == "original_xlm"
    assert ours.preprocessing == "original_xlm"
    assert XLMTokenizer.from_pretrained(out, preprocessing="transformers").preprocessing == "transformers"
    for text in TEXT:
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours.encode(text) == theirs.encode(text)
        assert theirs.unk_token_id not in theirs.encode(text)
    assert theirs.lang2id == {"en": 0, "fr": 1}

    # transformers, our PyTorch stack and our Keras stack load it and agree with the source model
    ids, mask, langs = _ids_and_langs(theirs, config)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, langs=langs).logits.numpy()
        loaded = transformers.XLMWithLMHeadModel.from_pretrained(out).eval()
        np.testing.assert_array_equal(loaded(ids, attention_mask=mask, langs=langs).logits.numpy(), expected)
        from xlm.torch_backend import XLMWithLMHeadModel

        ours_torch = XLMWithLMHeadModel.from_pretrained(out)
        np.testing.assert_allclose(ours_torch(ids, attention_mask=mask, langs=langs).logits.numpy(), expected,
                                   atol=1e-5, rtol=0)
    from xlm.tf_backend import TFXLMWithLMHeadModel

    ours_keras = TFXLMWithLMHeadModel.from_pretrained(out)
    keras_logits = np.asarray(ours_keras(ids.numpy(), attention_mask=mask.numpy(), langs=langs.numpy()).logits)
    np.testing.assert_allclose(keras_logits, expected, atol=1e-5, rtol=0)


def test_encoder_only_checkpoint_gives_a_base_model(bpe, reference, tmp_path):
    vocab, merges, word2id = bpe
    config, model = reference
    base = {k: v for k, v in model.state_dict().items() if k.startswith("transformer.")}
    write_original_checkpoint(tmp_path / "enc.pth", base, config, word2id, part="encoder",
                              extra_params={"clm_steps": [("en", None)], "mlm_steps": []})
    with pytest.raises(CheckpointError, match="no 'model' state dict .*encoder.*--part"):
        convert_original_checkpoint(tmp_path / "enc.pth", tmp_path / "out", None)
    with pytest.warns(UserWarning, match="no merges.txt"):
        out = convert_original_checkpoint(tmp_path / "enc.pth", tmp_path / "out", None, part="encoder", format="h5")
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["architectures"] == ["XLMModel"] and saved["causal"] is True  # CLM steps only
    assert sorted(os.listdir(out)) == ["config.json", "tf_model.h5", "vocab.json"]
    from xlm.torch_backend import XLMModel

    ours = XLMModel.from_pretrained(out)
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), base["transformer." + name].numpy(), err_msg=name)


def test_product_key_memory_is_not_supported(bpe, reference, tmp_path):
    vocab, merges, word2id = bpe
    config, model = reference
    memory = {"memories.0_in.keys": torch.zeros(2, 4, 8), "memories.0_in.values.weight": torch.zeros(16, 32)}
    write_original_checkpoint(tmp_path / "pkm.pth", model.state_dict(), config, word2id, extra_state=memory)
    with pytest.raises(UnsupportedCheckpointError, match=r"product-key memory layers \(memories.0_in\) are not supported"):
        convert_original_checkpoint(tmp_path / "pkm.pth", tmp_path / "out", None)
    write_original_checkpoint(tmp_path / "pkm2.pth", model.state_dict(), config, word2id,
                              extra_params={"use_memory": True})
    with pytest.raises(UnsupportedCheckpointError, match="use_memory=True.*not supported"):
        convert_original_checkpoint(tmp_path / "pkm2.pth", tmp_path / "out", None)
    assert not os.path.exists(tmp_path / "out") and leftovers(tmp_path) == []


def test_unknown_pickled_types_are_refused(bpe, reference, tmp_path):
    import fractions

    vocab, merges, word2id = bpe
    config, model = reference
    write_original_checkpoint(tmp_path / "evil.pth", model.state_dict(), config, word2id,
                              extra_params={"ratio": fractions.Fraction(1, 3)})
    with pytest.raises(CheckpointError, match=r"pickles fractions.Fraction.*weights_only=True"):
        load_original_checkpoint(tmp_path / "evil.pth")
    # what the allow-list admits: Namespace params, numpy arrays and scalars, tensors
    write_original_checkpoint(tmp_path / "ok.pth", model.state_dict(), config, word2id, params_as="namespace")
    data = load_original_checkpoint(tmp_path / "ok.pth")
    assert isinstance(data["params"].mask_scores, np.ndarray) and isinstance(data["best_metrics"]["valid_mlm_ppl"], np.float64)


def test_weight_and_dictionary_errors(bpe, reference, tmp_path):
    vocab, merges, word2id = bpe
    config, model = reference
    state = dict(model.state_dict())
    del state["transformer.ffns.1.lin2.bias"]
    state["transformer.extra.weight"] = torch.zeros(3)
    state["transformer.layer_norm_emb.weight"] = torch.zeros(7)
    write_original_checkpoint(tmp_path / "bad.pth", state, config, word2id)
    with pytest.raises(WeightMismatchError) as info:
        convert_original_checkpoint(tmp_path / "bad.pth", tmp_path / "out", None)
    message = str(info.value)
    assert "missing (1): ffns.1.lin2.bias" in message and "unexpected (1): extra.weight" in message
    assert "layer_norm_emb.weight has shape [7], the model needs [32]" in message

    untied = dict(model.state_dict())
    untied["pred_layer.proj.weight"] = untied["transformer.embeddings.weight"] + 1
    write_original_checkpoint(tmp_path / "untied.pth", untied, config, word2id)
    with pytest.raises(UnsupportedCheckpointError, match="share_inout_emb=False"):
        convert_original_checkpoint(tmp_path / "untied.pth", tmp_path / "out", None)

    short = dict(list(word2id.items())[:-1])
    write_original_checkpoint(tmp_path / "dico.pth", model.state_dict(), config, short)
    with pytest.raises(CheckpointError, match="dico_word2id has .* words"):
        convert_original_checkpoint(tmp_path / "dico.pth", tmp_path / "out", None)
    assert not os.path.exists(tmp_path / "out") and leftovers(tmp_path) == []


def test_truncated_checkpoint_and_existing_output(bpe, reference, tmp_path):
    vocab, merges, word2id = bpe
    config, model = reference
    write_original_checkpoint(tmp_path / "mlm.pth", model.state_dict(), config, word2id)
    data = (tmp_path / "mlm.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pth is not a readable PyTorch checkpoint \(truncated or corrupted"):
        convert_original_checkpoint(tmp_path / "cut.pth", tmp_path / "out", None)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        convert_original_checkpoint(tmp_path / "mlm.pth", tmp_path / "out", None)
    assert os.listdir(tmp_path / "out") == ["keep.txt"]


def test_vocab_conversion_rules():
    word2id = {"<s>": 0, "</s>": 1, "<pad>": 2, "<unk>": 3, **{f"<special{i}>": 4 + i for i in range(10)},
               "hel@@": 14, "lo": 15, "a@@b": 16}
    vocab = original_vocab(word2id)
    assert vocab["hel"] == 14 and vocab["lo</w>"] == 15 and vocab["<special1>"] == 5
    assert vocab["a@@b</w>"] == 16  # only a trailing marker is a continuation
    assert dictionary_from_vocab(vocab) == word2id


def test_command_line_from_original_with_check(bpe, reference, tmp_path, capsys):
    from conversion.__main__ import main

    vocab, merges, word2id = bpe
    config, model = reference
    write_original_checkpoint(tmp_path / "mlm.pth", model.state_dict(), config, word2id)
    write_codes(tmp_path / "codes", merges)
    code = main(["from-original", str(tmp_path / "mlm.pth"), str(tmp_path / "out"), "--codes", str(tmp_path / "codes"),
                 "--check", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "PASSED" in captured.out and "tokenised with" in captured.out, captured.err
    assert main(["from-original", str(tmp_path / "mlm.pth"), str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
