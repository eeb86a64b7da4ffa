"""resize_token_embeddings against transformers 4.57.6: the same rows for the same seed, the same
outputs, and the LM loss over the new words (transformers' fails there)."""

from __future__ import annotations

import pytest
import torch
from torch_parity import TOLERANCE, max_diff, randomize_, torch_inputs

import xlm.torch_backend as ours
from xlm_testing import tiny_config, transformers_config

transformers = pytest.importorskip("transformers")

SIZES = [(130, None), (90, None), (101, 64), (None, 8)]
DROPPED = r"new_num_tokens=3 would drop the config.s special ids unk_index=3, mask_index=5: keep at least 6 rows"


def resized_pair(architecture: str, new_num_tokens, pad_to_multiple_of, mean_resizing: bool, **overrides):
    config = tiny_config(**overrides)
    torch.manual_seed(0)
    reference = getattr(transformers, architecture)(transformers_config(config)).eval()
    randomize_(reference, seed=1)
    model = getattr(ours, architecture)(config).eval()
    model.load_weights(reference.state_dict())
    for m in (reference, model):
        torch.manual_seed(2)
        m.resize_token_embeddings(new_num_tokens, pad_to_multiple_of=pad_to_multiple_of, mean_resizing=mean_resizing)
    return reference, model


@pytest.mark.parametrize("new_num_tokens, pad_to_multiple_of", SIZES)
@pytest.mark.parametrize("mean_resizing", [True, False])
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("architecture", ["XLMWithLMHeadModel", "XLMForTokenClassification"])
def test_resize_equals_transformers(architecture, tie, mean_resizing, new_num_tokens, pad_to_multiple_of):
    reference, model = resized_pair(architecture, new_num_tokens, pad_to_multiple_of, mean_resizing,
                                    tie_word_embeddings=tie)
    size = model.config.vocab_size
    assert size == reference.config.vocab_size == model.get_input_embeddings().num_embeddings
    expected, actual = reference.state_dict(), model.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:  # draw for draw: the same seed gives the same new rows
        assert torch.equal(expected[name], actual[name]), name
    if architecture == "XLMWithLMHeadModel":
        assert (model.pred_layer.proj.weight is model.transformer.embeddings.weight) == tie
        assert model.pred_layer.proj.bias.shape == (size,)
    inputs = torch_inputs(model.config)
    inputs["input_ids"][0, :3] = torch.tensor([size - 1, size - 2, 20])  # new words, where there are
    with torch.no_grad():
        assert max_diff(reference(**inputs).logits, model(**inputs).logits) <= TOLERANCE


@pytest.mark.parametrize("tie", [True, False])
def test_lm_loss_and_training_after_resize(tie):
    """transformers' LM loss still views the logits with the old vocabulary size and fails; ours
    equals cross entropy over the new one, and a training step updates the new rows."""
    _, model = resized_pair("XLMWithLMHeadModel", 130, None, True, tie_word_embeddings=tie)
    ids = torch_inputs(model.config)["input_ids"]
    ids[:, 1] = 129
    out = model(ids, labels=ids)
    assert out.logits.shape[-1] == 130
    expected = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), ids.flatten())
    assert abs(out.loss.item() - expected.item()) <= TOLERANCE
    before = model.transformer.embeddings.weight[129].detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out.loss.backward()
    optimizer.step()
    assert not torch.equal(model.transformer.embeddings.weight[129], before)
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match=r"input_ids.*130"):
        model(torch.tensor([[5, 130]]))  # the id check follows the new size


def test_resized_checkpoint_round_trips_with_transformers(tmp_path):
    _, model = resized_pair("XLMWithLMHeadModel", 130, None, True)
    model.save_pretrained(tmp_path)
    theirs = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path).eval()
    again = ours.XLMWithLMHeadModel.from_pretrained(tmp_path).eval()
    ids = torch_inputs(model.config)["input_ids"]
    ids[0, 0] = 129
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
        assert max_diff(theirs(ids).logits, model(ids).logits) <= TOLERANCE


def test_new_rows_sit_at_the_old_mean_or_follow_the_init():
    torch.manual_seed(0)
    model = ours.XLMModel(tiny_config())
    old = model.embeddings.weight.detach().clone()
    model.resize_token_embeddings(old.shape[0] + 200)
    new = model.embeddings.weight.detach()
    assert torch.equal(new[: len(old)], old)
    assert (new[len(old):] - old.mean(0)).abs().max() <= 1e-4  # 1e-9 × the covariance: at the mean
    model.resize_token_embeddings(old.shape[0])
    model.resize_token_embeddings(old.shape[0] + 200, mean_resizing=False)
    drawn = model.embeddings.weight.detach()[len(old):]
    assert abs(drawn.std().item() - model.config.embed_init_std) <= 0.1 * model.config.embed_init_std
    with torch.no_grad():  # equal rows: no positive-definite covariance, so the new rows are the mean
        model.embeddings.weight.copy_(torch.linspace(-1, 1, model.config.emb_dim))
    mean = model.embeddings.weight.detach().mean(0)
    model.resize_token_embeddings(model.config.vocab_size + 5)
    assert torch.equal(model.embeddings.weight[-5:], mean.expand(5, -1))


def test_resize_refuses_what_it_cannot_do():
    model = ours.XLMWithLMHeadModel(tiny_config())
    size = model.config.vocab_size
    assert model.resize_token_embeddings() is model.transformer.embeddings  # nothing asked: unchanged
    assert model.config.vocab_size == size
    with pytest.raises(ValueError, match=DROPPED):
        model.resize_token_embeddings(3)
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive integer, got 0"):
        model.resize_token_embeddings(120, pad_to_multiple_of=0)
    with pytest.raises(ValueError, match="new_num_tokens must be a positive integer, got 1.5"):
        model.resize_token_embeddings(1.5)
    asm = ours.XLMWithLMHeadModel(tiny_config("asm"))
    with pytest.raises(ValueError, match="adaptive-softmax output"):
        asm.resize_token_embeddings(asm.config.vocab_size + 1)
    assert model.config.vocab_size == size and asm.transformer.embeddings.num_embeddings == asm.config.vocab_size


@pytest.mark.parametrize("rows", [130, 90])
def test_set_input_embeddings_of_another_size(rows):
    """transformers with `tie_weights()` after `set_input_embeddings` gives the same logits; ours also
    follows the new size in the config, the LM loss and the id checks (transformers keeps the old ones)."""
    reference, model = resized_pair("XLMWithLMHeadModel", None, None, True)
    table = torch.randn(rows, model.config.emb_dim, generator=torch.Generator().manual_seed(3))
    model.set_input_embeddings(torch.nn.Embedding.from_pretrained(table.clone(), freeze=False))
    reference.set_input_embeddings(torch.nn.Embedding.from_pretrained(table.clone(), freeze=False))
    reference.tie_weights()
    assert model.config.vocab_size == model.pred_layer.vocab_size == rows
    assert model.pred_layer.proj.weight is model.transformer.embeddings.weight
    ids = torch_inputs(model.config)["input_ids"] % rows
    ids[:, 1] = rows - 1
    with torch.no_grad():
        out, expected = model(ids, labels=ids), reference(ids).logits
    assert out.logits.shape[-1] == rows and max_diff(out.logits, expected) <= TOLERANCE
    loss = torch.nn.functional.cross_entropy(expected.flatten(0, 1), ids.flatten())
    assert abs(out.loss.item() - loss.item()) <= TOLERANCE
    with pytest.raises(ValueError, match=rf"input_ids.*{rows}"):
        model(torch.tensor([[5, rows]]))


def test_set_input_embeddings_refuses_what_it_cannot_do():
    model = ours.XLMWithLMHeadModel(tiny_config())
    dim, size = model.config.emb_dim, model.config.vocab_size
    with pytest.raises(ValueError, match=rf"\(rows, emb_dim={dim}\) word-embedding table, got shape \({size}, 16\)"):
        model.set_input_embeddings(torch.nn.Embedding(size, 16))
    with pytest.raises(ValueError, match="a 3-row table would drop the config.s special ids unk_index=3, mask_index=5"):
        model.set_input_embeddings(torch.nn.Embedding(3, dim))
    asm = ours.XLMWithLMHeadModel(tiny_config("asm"))
    with pytest.raises(ValueError, match="set_input_embeddings can't resize an adaptive-softmax output"):
        asm.set_input_embeddings(torch.nn.Embedding(asm.config.vocab_size + 1, dim))
    assert model.config.vocab_size == size and model.transformer.embeddings.num_embeddings == size
