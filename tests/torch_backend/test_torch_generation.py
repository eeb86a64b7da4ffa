"""generate(): cached decoding equals full recomputation; greedy / top-k / top-p sampling; beam search against
exhaustive search; languages; padded batches with token types."""

from __future__ import annotations

import itertools
import os

import pytest
import torch
from torch_parity import TOLERANCE, max_diff, model_pair, torch_inputs

import xlm
import xlm.torch_backend as ours
from xlm.torch_backend import filter_logits
from xlm_testing import tiny_config

CAUSAL_OVERRIDES = {
    "causal": (),
    "asm": (("causal", True),),
    "sinusoidal": (("causal", True), ("n_langs", 3)),
}


def causal_model(variant: str):
    return model_pair(variant, "XLMWithLMHeadModel", CAUSAL_OVERRIDES[variant])


def prompt(config, length: int = 4) -> torch.Tensor:
    return torch_inputs(config, batch=3, seq_len=length, pad=False)["input_ids"]


@pytest.mark.parametrize("variant", list(CAUSAL_OVERRIDES))
def test_cached_logits_equal_full_recomputation(variant):
    _, model = causal_model(variant)
    ids = torch_inputs(model.config, batch=3, seq_len=12, pad=False)["input_ids"]
    langs = (torch.arange(12) >= 6).long().expand(3, -1) * (model.config.n_langs - 1)
    cache: dict = {}
    with torch.no_grad():
        for t in range(3, 13):
            step = model(ids[:, :t], langs=langs[:, :t], cache=cache).logits
            full = model(ids[:, :t], langs=langs[:, :t]).logits
            assert step.shape[1] == (3 if t == 3 else 1)
            assert max_diff(step, full[:, -step.shape[1]:]) <= TOLERANCE
    assert cache["slen"] == 12


@pytest.mark.parametrize("variant", list(CAUSAL_OVERRIDES))
def test_greedy_matches_transformers_argmax(variant):
    reference, model = causal_model(variant)
    ids = prompt(model.config)
    lang = 1 % model.config.n_langs
    generated = model.generate(ids, max_new_tokens=6, langs=lang)
    assert generated.shape == (3, 10)
    assert torch.equal(generated[:, :4], ids)
    assert torch.equal(model.generate(ids, max_new_tokens=6, langs=lang, use_cache=False), generated)
    if model.config.asm:
        return  # transformers' adaptive-softmax head cannot run on (batch, seq, dim)
    expected = ids
    with torch.no_grad():
        for _ in range(6):
            langs = torch.full_like(expected, 1 % model.config.n_langs)
            next_ids = reference(expected, langs=langs).logits[:, -1].argmax(-1)
            expected = torch.cat([expected, next_ids[:, None]], dim=1)
    assert torch.equal(generated, expected)


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"), [(0, 1.0, 1.0), (5, 1.0, 0.7), (0, 0.8, 1.3), (10, 0.9, 1.0)]
)
def test_sampling_cached_equals_uncached(top_k, top_p, temperature):
    _, model = causal_model("causal")
    ids = prompt(model.config)
    runs = [
        model.generate(ids, max_new_tokens=8, do_sample=True, top_k=top_k, top_p=top_p, temperature=temperature,
                       use_cache=use_cache, generator=torch.Generator().manual_seed(7))
        for use_cache in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
    other_seed = model.generate(ids, max_new_tokens=8, do_sample=True, generator=torch.Generator().manual_seed(8))
    assert other_seed.shape == runs[0].shape


def test_top_k_one_is_greedy():
    _, model = causal_model("causal")
    ids = prompt(model.config)
    sampled = model.generate(ids, max_new_tokens=5, do_sample=True, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, model.generate(ids, max_new_tokens=5))


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.6)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.81)).tolist() == [[False, False, False, True]]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isinf(filter_logits(shuffled, top_p=0.6)).tolist() == [[True, False, True, False]]


def test_languages_steer_generation():
    _, model = causal_model("causal")
    ids = prompt(model.config)
    langs = torch.zeros_like(ids)
    langs[0] = 1
    with torch.no_grad():
        logits_0 = model(ids, langs=torch.zeros_like(ids)).logits
        logits_1 = model(ids, langs=torch.ones_like(ids)).logits
    assert max_diff(logits_0, logits_1) > 1e-3
    per_row = model.generate(ids, max_new_tokens=4, langs=langs)
    row0 = model.generate(ids[:1], max_new_tokens=4, langs=1)
    row1 = model.generate(ids[1:2], max_new_tokens=4, langs=0)
    assert torch.equal(per_row[0], row0[0]) and torch.equal(per_row[1], row1[0])


def test_eos_stops_and_pads():
    _, model = causal_model("causal")
    ids = prompt(model.config)
    free = model.generate(ids, max_new_tokens=6)
    eos = int(free[0, 5])  # the token row 0 produces second
    out = model.generate(ids, max_new_tokens=6, eos_token_id=eos)
    first_eos = (out[0, 4:] == eos).nonzero()[0].item() + 4
    assert torch.all(out[0, first_eos + 1 :] == model.config.pad_index)
    assert torch.equal(out[0, : first_eos + 1], free[0, : first_eos + 1])


def test_generate_needs_a_causal_model():
    model = ours.XLMWithLMHeadModel(tiny_config("default")).eval()
    with pytest.raises(ValueError, match="needs a causal model"):
        model.generate(torch.tensor([[5, 6, 7]]))


def test_generation_stops_at_the_position_table():
    _, model = causal_model("causal")
    ids = torch_inputs(model.config, batch=1, seq_len=60, pad=False)["input_ids"]
    out = model.generate(ids, max_new_tokens=10)
    assert out.shape == (1, model.config.max_position_embeddings)


def small_vocabulary_model() -> ours.XLMWithLMHeadModel:
    """A causal model over 12 words, with weights large enough to give varied distributions."""
    torch.manual_seed(0)
    return ours.XLMWithLMHeadModel(tiny_config("default", causal=True, vocab_size=12, n_langs=2, init_std=0.3)).eval()


def best_by_exhaustive_search(model, ids, langs, steps: int, eos: int | None, length_penalty: float, k: int):
    """The k best continuations of each prompt, scoring every sequence of `steps` new tokens (cut after
    its first `eos`) by its new tokens' summed log-probabilities / length ** length_penalty."""
    vocab = model.config.vocab_size
    every = torch.tensor(list(itertools.product(range(vocab), repeat=steps)))
    best = []
    for row, lang in zip(ids, langs):
        full = torch.cat([row.expand(len(every), -1), every], dim=1)
        with torch.no_grad():
            log_probs = torch.log_softmax(model(full, langs=torch.full_like(full, lang)).logits.float(), dim=-1)
        picked = log_probs[:, len(row) - 1 : -1].gather(2, every[..., None])[..., 0]
        scores = {}
        for tokens, token_scores in zip(every.tolist(), picked.tolist()):
            length = tokens.index(eos) + 1 if eos in tokens else steps
            scores[tuple(tokens[:length])] = sum(token_scores[:length]) / length**length_penalty
        best.append(sorted(scores, key=scores.get, reverse=True)[:k])
    return best


@pytest.mark.parametrize("eos, length_penalty", [(None, 1.0), (7, 0.0), (7, 1.0)])
def test_beam_search_with_a_beam_for_every_prefix_is_exhaustive_search(eos, length_penalty):
    model = small_vocabulary_model()
    ids, langs = torch.tensor([[7, 8, 6], [10, 11, 6]]), torch.tensor([[0], [1]])
    expected = best_by_exhaustive_search(model, ids, langs[:, 0], 3, eos, length_penalty, k=3)
    # 144 beams hold every 2-token prefix, so the third step sees every sequence
    out = model.generate(ids, max_new_tokens=3, num_beams=144, num_return_sequences=3, eos_token_id=eos,
                         length_penalty=length_penalty, langs=langs.expand(-1, 3))
    assert out.shape[0] == 6 and torch.equal(out[:, :3], ids.repeat_interleave(3, dim=0))
    pad = model.config.pad_index
    assert out[:, 3:].tolist() == [list(s) + [pad] * (out.shape[1] - 3 - len(s)) for prompt in expected for s in prompt]
    if eos is not None:
        assert any(len(s) < 3 for prompt in expected for s in prompt)  # the test exercises finished sequences


def test_beam_search_one_beam_cache_and_refusals():
    model = small_vocabulary_model()
    ids = torch.tensor([[7, 8, 6], [10, 11, 6]])
    greedy = model.generate(ids, max_new_tokens=5)
    assert torch.equal(model.generate(ids, max_new_tokens=5, num_beams=1), greedy)
    beams = model.generate(ids, max_new_tokens=5, num_beams=3, num_return_sequences=2, eos_token_id=9)
    assert torch.equal(model.generate(ids, max_new_tokens=5, num_beams=3, num_return_sequences=2, eos_token_id=9,
                                      use_cache=False), beams)
    assert torch.equal(beams[0::2, :3], ids) and not torch.equal(beams[0], beams[1])
    samples = model.generate(ids, max_new_tokens=5, do_sample=True, num_return_sequences=4,
                             generator=torch.Generator().manual_seed(0))
    assert samples.shape == (8, 8) and torch.equal(samples[:, :3], ids.repeat_interleave(4, dim=0))
    with pytest.raises(ValueError, match="beam sampling"):
        model.generate(ids, num_beams=2, do_sample=True)
    with pytest.raises(ValueError, match="num_return_sequences=3 needs num_beams >= 3"):
        model.generate(ids, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="num_beams must be a positive integer, got 0"):
        model.generate(ids, num_beams=0)


def padded_batch(config, rows: list[list[int]]) -> dict:
    """A tokenizer-style right-padded batch of `rows`, with token types."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), config.pad_index)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    types = (torch.arange(width) % 2 + 20).expand(len(rows), -1).clone() * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.parametrize("kwargs", [{}, {"num_beams": 3, "num_return_sequences": 2}, {"eos_token_id": 30}])
def test_a_padded_batch_continues_each_prompt_from_its_own_last_token(kwargs):
    _, model = causal_model("causal")
    rows = [[20, 21, 22, 23, 24], [30, 31], [40, 41, 42], [50, 51]]
    batch = padded_batch(model.config, rows)
    out = model.generate(**batch, max_new_tokens=4, langs=1, **kwargs)
    copies = kwargs.get("num_return_sequences", 1)
    assert out.shape[0] == len(rows) * copies
    for i, row in enumerate(rows):
        alone = model.generate(torch.tensor([row]), token_type_ids=batch["token_type_ids"][i : i + 1, : len(row)],
                               max_new_tokens=4, langs=1, **kwargs)
        got = out[i * copies : (i + 1) * copies]
        assert torch.equal(got[:, : alone.shape[1]], alone)
        assert (got[:, alone.shape[1] :] == model.config.pad_index).all()
    untyped = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=4, **kwargs)
    assert not torch.equal(untyped, out)  # the token types reach the model


def test_attention_mask_checks_and_a_real_tokenizer_batch():
    from xlm import XLMTokenizer
    from xlm.generation_utils import prompt_lengths

    _, model = causal_model("causal")
    ids = prompt(model.config)
    ones = torch.ones_like(ids)
    unmasked = model.generate(ids, max_new_tokens=3)
    assert torch.equal(model.generate(ids, attention_mask=ones, max_new_tokens=3), unmasked)
    left = ones.clone()
    left[1, 0] = 0
    with pytest.raises(ValueError, match="attention_mask row 1 has padding before a token"):
        model.generate(ids, attention_mask=left)
    with pytest.raises(ValueError, match="attention_mask row 2 masks every token"):
        model.generate(ids, attention_mask=torch.where(torch.arange(3)[:, None] == 2, 0, ones))
    with pytest.raises(ValueError, match=r"attention_mask has shape \[3, 3\]; expected input_ids' \[3, 4\]"):
        model.generate(ids, attention_mask=ones[:, :3])
    assert prompt_lengths([[1, 1, 0], [1, 0, 0]], (2, 3)).tolist() == [2, 1]

    tokenizer = XLMTokenizer.from_pretrained(os.path.join(os.path.dirname(xlm.__file__), "data", "default_model"))
    torch.manual_seed(0)
    model = ours.XLMWithLMHeadModel(tiny_config("causal", vocab_size=len(tokenizer))).eval()
    texts = ["Open the file.", "Click the button to save all of your documents."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"][0] == 0).any()  # the first text is padded
    out = model.generate(**batch, max_new_tokens=3)
    for i, text in enumerate(texts):
        alone = tokenizer(text, return_tensors="pt")
        expected = model.generate(**alone, max_new_tokens=3)[0]
        assert torch.equal(out[i, : len(expected)], expected)
