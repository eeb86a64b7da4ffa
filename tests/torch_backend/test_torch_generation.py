"""generate(): cached decoding equals full recomputation; greedy / top-k / top-p sampling; languages."""

from __future__ import annotations

import pytest
import torch
from torch_parity import TOLERANCE, max_diff, model_pair, torch_inputs

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
