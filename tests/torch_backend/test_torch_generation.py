"""generate(): cached decoding equals full recomputation; greedy / top-k / top-p sampling; beam search against
exhaustive search; languages; padded batches with token types. Masked-LM models against transformers 4.57.6
(tokens, scores, beam outputs) for every argument; transformers' arguments and GenerationConfig on causal
models against a step-by-step reference."""

from __future__ import annotations

import functools
import itertools
import os

import pytest
import torch
import transformers
from torch_parity import TOLERANCE, max_diff, model_pair, randomize_, torch_inputs

import xlm
import xlm.torch_backend as ours
from xlm.torch_backend import filter_logits
from xlm_testing import tiny_config, transformers_config

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
    assert torch.isinf(filter_logits(logits, top_p=0.0, min_tokens_to_keep=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_k=1, min_tokens_to_keep=3)).tolist() == [[False, False, False, True]]
    scores = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    for top_k, top_p in ((7, 1.0), (0, 0.9), (10, 0.5)):
        expected = scores
        if top_k:
            expected = transformers.TopKLogitsWarper(top_k)(None, expected)
        if top_p < 1.0:
            expected = transformers.TopPLogitsWarper(top_p)(None, expected)
        assert torch.equal(filter_logits(scores, top_k, top_p), expected)


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


# --- masked-LM models: transformers' generation, argument by argument --------------------------------------------

MASKED_LM = {"default": (), "multilang": (("lang_id", 1),)}
EOS, OTHER_EOS = "eos", "other eos"  # stand for tokens the model produces (row 0's third and row 1's second)
MASKED_LM_CASES = {
    "greedy": dict(max_new_tokens=6),
    "default length": dict(),
    "max_length": dict(max_length=9),
    "repetition_penalty": dict(max_new_tokens=6, repetition_penalty=1.7),
    "no_repeat_ngram_size": dict(max_new_tokens=8, no_repeat_ngram_size=2),
    "eos and scores": dict(max_new_tokens=8, eos_token_id=EOS, return_dict_in_generate=True, output_scores=True,
                           output_logits=True),
    "eos list, min_new_tokens": dict(max_new_tokens=8, eos_token_id=[EOS, OTHER_EOS], min_new_tokens=3,
                                     return_dict_in_generate=True, output_scores=True),
    "min_length, pad_token_id": dict(max_new_tokens=8, eos_token_id=EOS, min_length=8, pad_token_id=0),
    "sampling": dict(max_new_tokens=6, do_sample=True, return_dict_in_generate=True, output_scores=True),
    "top_p, temperature": dict(max_new_tokens=6, do_sample=True, top_k=0, top_p=0.8, temperature=0.7,
                               return_dict_in_generate=True, output_scores=True),
    "samples, penalty": dict(max_new_tokens=6, do_sample=True, num_return_sequences=2, repetition_penalty=1.3),
    "beams": dict(max_new_tokens=5, num_beams=3),
    "beams, eos, scores": dict(max_new_tokens=6, num_beams=3, num_return_sequences=2, eos_token_id=EOS,
                               return_dict_in_generate=True, output_scores=True, output_logits=True),
    "beams, early_stopping": dict(max_new_tokens=7, num_beams=4, num_return_sequences=3, eos_token_id=[OTHER_EOS, EOS],
                                  length_penalty=0.5, early_stopping=True, return_dict_in_generate=True,
                                  output_scores=True),
    "beams, never, processors": dict(max_new_tokens=7, num_beams=4, eos_token_id=EOS, length_penalty=2.0,
                                     early_stopping="never", repetition_penalty=1.2, no_repeat_ngram_size=2,
                                     return_dict_in_generate=True, output_scores=True),
}


@functools.lru_cache(maxsize=None)
def masked_lm(variant: str):
    """(transformers model, ours) of a masked LM; the multilingual one with larger weights, whose greedy tokens
    vary from step to step (tiny random models tend to repeat one token)."""
    if variant == "default":
        return model_pair(variant, "XLMWithLMHeadModel", MASKED_LM[variant])
    config = tiny_config(variant, **dict(MASKED_LM[variant]))
    torch.manual_seed(0)
    reference = transformers.XLMWithLMHeadModel(transformers_config(config)).eval()
    randomize_(reference, seed=1, std=0.5)
    model = ours.XLMWithLMHeadModel(config).eval()
    model.load_weights(reference.state_dict())
    return reference, model


def with_eos(kwargs: dict, free: torch.Tensor, prompt_len: int) -> dict:
    """`kwargs` with the EOS / OTHER_EOS stand-ins replaced by tokens of the free greedy run `free`."""
    ids = {EOS: int(free[0, prompt_len + 2]), OTHER_EOS: int(free[1, prompt_len + 1])}
    value = kwargs.get("eos_token_id")
    if value is None:
        return kwargs
    eos = [ids.get(v, v) for v in value] if isinstance(value, list) else ids.get(value, value)
    return {**kwargs, "eos_token_id": eos}


def assert_generations_equal(expected, actual) -> None:
    """Same class name and sequences; per-step scores / logits and sequence scores within TOLERANCE, with -inf
    at the same places; beam indices equal."""
    if isinstance(expected, torch.Tensor):
        assert torch.equal(actual, expected), (actual, expected)
        return
    assert type(actual).__name__ == type(expected).__name__
    assert torch.equal(actual.sequences, expected.sequences), (actual.sequences, expected.sequences)
    for name in ("scores", "logits"):
        want, got = getattr(expected, name), getattr(actual, name)
        assert (got is None) == (want is None), name
        if want is not None:
            assert len(got) == len(want)
            for w, g in zip(want, got):
                assert torch.equal(torch.isinf(g), torch.isinf(w))
                assert max_diff(g.nan_to_num(0, 0, 0), w.nan_to_num(0, 0, 0)) <= TOLERANCE
    if hasattr(expected, "sequences_scores"):
        if expected.sequences_scores is not None:
            assert max_diff(actual.sequences_scores, expected.sequences_scores) <= TOLERANCE
        assert torch.equal(actual.beam_indices, expected.beam_indices.to(actual.beam_indices.dtype))


@pytest.mark.parametrize("case", list(MASKED_LM_CASES))
@pytest.mark.parametrize("variant", list(MASKED_LM))
def test_masked_lm_generation_equals_transformers(variant, case):
    """transformers' XLM appends mask_token_id and predicts there (in config.lang_id): ours too, with its tokens,
    scores and beam outputs; sampling draws from torch's global generator as transformers' does."""
    reference, model = masked_lm(variant)
    ids = prompt(model.config, length=5)
    kwargs = with_eos(MASKED_LM_CASES[case], model.generate(ids, max_new_tokens=8), 5)
    torch.manual_seed(3)
    expected = reference.generate(ids, **kwargs)
    torch.manual_seed(3)
    actual = model.generate(ids, **kwargs)
    assert_generations_equal(expected, actual)
    if variant == "multilang" and "eos_token_id" in kwargs and "num_beams" not in kwargs:
        sequences = expected if isinstance(expected, torch.Tensor) else expected.sequences
        pad = kwargs.get("pad_token_id", model.config.pad_token_id)
        assert (sequences[:, 5:] == pad).any()  # the case sees rows finish before others


def test_masked_lm_generation_uses_the_mask_token_and_lang_id():
    reference, model = masked_lm("multilang")
    ids = prompt(model.config, length=5)
    out = model.generate(ids, max_new_tokens=1)
    with torch.no_grad():
        inputs = torch.cat([ids, torch.full_like(ids[:, :1], model.config.mask_token_id)], dim=1)
        logits = reference(inputs, langs=torch.full_like(inputs, 1)).logits[:, -1]
    assert torch.equal(out[:, -1], logits.argmax(-1))
    assert not torch.equal(model.generate(ids, max_new_tokens=4, langs=0), model.generate(ids, max_new_tokens=4))


def test_generation_config_is_transformers():
    reference, model = masked_lm("multilang")
    expected = reference.generation_config
    settings = model.generation_config
    for name in ("max_length", "max_new_tokens", "min_length", "do_sample", "num_beams", "temperature", "top_k",
                 "top_p", "repetition_penalty", "no_repeat_ngram_size", "length_penalty", "early_stopping",
                 "num_return_sequences", "pad_token_id", "bos_token_id", "eos_token_id", "use_cache",
                 "output_scores", "return_dict_in_generate"):
        assert getattr(settings, name) == getattr(expected, name), name
    assert settings is model.generation_config
    ids = prompt(model.config, length=5)
    chosen = transformers.GenerationConfig(max_new_tokens=4, num_beams=2, repetition_penalty=1.4)
    ours_config = xlm.GenerationConfig(**chosen.to_diff_dict())
    assert torch.equal(model.generate(ids, generation_config=ours_config), reference.generate(ids, chosen))
    assert torch.equal(model.generate(ids, ours_config, num_beams=1), reference.generate(ids, chosen, num_beams=1))
    # a changed model default applies to every call, as in transformers
    model.generation_config = xlm.GenerationConfig.from_model_config(model.config)
    model.generation_config.max_new_tokens = 3
    try:
        assert model.generate(ids).shape == (3, 8)
    finally:
        model.generation_config = xlm.GenerationConfig.from_model_config(model.config)
    with pytest.raises(ValueError, match="generation_config must be an xlm.GenerationConfig, got dict"):
        model.generate(ids, generation_config={"max_new_tokens": 3})


def test_generation_config_round_trip(tmp_path):
    settings = xlm.GenerationConfig(max_new_tokens=7, num_beams=3, eos_token_id=[1, 2], typical_p=0.5)
    path = settings.save_pretrained(tmp_path)
    assert os.path.basename(path) == "generation_config.json"
    loaded = xlm.GenerationConfig.from_pretrained(tmp_path)
    assert loaded == settings and loaded.typical_p == 0.5
    assert transformers.GenerationConfig.from_pretrained(tmp_path).num_beams == 3  # transformers reads it
    transformers.GenerationConfig(do_sample=True, top_k=7, max_length=30).save_pretrained(tmp_path / "hf")
    theirs = xlm.GenerationConfig.from_pretrained(tmp_path / "hf")
    assert (theirs.top_k, theirs.max_length, theirs.num_beams) == (7, 30, 1)


def test_no_prompt_starts_from_bos():
    reference, model = masked_lm("default")
    assert torch.equal(model.generate(max_new_tokens=4), reference.generate(max_new_tokens=4))
    assert torch.equal(model.generate(bos_token_id=7, max_new_tokens=2)[:, 0], torch.tensor([7]))
    ids = prompt(model.config)
    assert torch.equal(model.generate(inputs=ids, max_new_tokens=2), model.generate(ids, max_new_tokens=2))


def test_padded_masked_lm_batch_continues_each_prompt():
    _, model = masked_lm("multilang")
    rows = [[20, 21, 22, 23, 24], [30, 31], [40, 41, 42]]
    batch = padded_batch(model.config, rows)
    del batch["token_type_ids"]
    out = model.generate(**batch, max_new_tokens=4)
    for i, row in enumerate(rows):
        alone = model.generate(torch.tensor([row]), max_new_tokens=4)[0]
        assert torch.equal(out[i, : len(alone)], alone)


# --- transformers' arguments on causal models (our last-position scheme) ------------------------------------------

def reference_greedy(model, ids, steps: int, process, eos: list[int] = (), pad: int = 2):
    """Greedy decoding by full recomputation, with `process(ids, logits)` applied to each step's logits; rows that
    produced an `eos` id continue with `pad`; stops when every row has."""
    scores, finished = [], torch.zeros(len(ids), dtype=torch.bool)
    with torch.no_grad():
        for _ in range(steps):
            logits = process(ids, model(ids, attention_mask=torch.ones_like(ids)).logits[:, -1].float())
            scores.append(logits)
            next_ids = torch.where(finished, pad, logits.argmax(-1))
            finished |= torch.isin(next_ids, torch.tensor(list(eos), dtype=torch.long))
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            if eos and finished.all():
                break
    return ids, scores


@pytest.mark.parametrize("case", ["repetition_penalty", "no_repeat_ngram_size", "min_new_tokens", "min_length"])
def test_causal_processors_equal_transformers_processors_step_by_step(case):
    """Each step's scores are the last position's logits through transformers' processor (which sees the
    prompt and the tokens so far), with and without the cache; the eos ids are tokens the free run produces
    first, so the minimum lengths change the tokens."""
    _, model = causal_model("causal")
    ids = prompt(model.config)
    free = model.generate(ids, max_new_tokens=6)
    eos = sorted({int(free[0, 4]), int(free[1, 5])})
    kwargs, processor = {
        "repetition_penalty": (dict(repetition_penalty=1.8), transformers.RepetitionPenaltyLogitsProcessor(1.8)),
        "no_repeat_ngram_size": (dict(no_repeat_ngram_size=2), transformers.NoRepeatNGramLogitsProcessor(2)),
        "min_new_tokens": (dict(min_new_tokens=4, eos_token_id=eos),
                           transformers.MinNewTokensLengthLogitsProcessor(4, 4, eos)),
        "min_length": (dict(min_length=7, eos_token_id=eos[0]), transformers.MinLengthLogitsProcessor(7, eos[0])),
    }[case]
    expected, expected_scores = reference_greedy(model, ids, 6, processor, eos=[kwargs.get("eos_token_id")]
                                                 if isinstance(kwargs.get("eos_token_id"), int)
                                                 else kwargs.get("eos_token_id", ()))
    assert not torch.equal(free, expected)  # the argument changes the tokens
    for use_cache in (True, False):
        out = model.generate(ids, max_new_tokens=6, use_cache=use_cache, return_dict_in_generate=True,
                             output_scores=True, **kwargs)
        assert torch.equal(out.sequences, expected)
        assert len(out.scores) == len(expected_scores)
        for got, want in zip(out.scores, expected_scores):
            assert torch.equal(torch.isinf(got), torch.isinf(want))
            assert max_diff(got.nan_to_num(0, 0, 0), want.nan_to_num(0, 0, 0)) <= TOLERANCE


def test_no_repeat_ngram_and_min_new_tokens_hold_on_beams():
    model = small_vocabulary_model()
    ids = torch.tensor([[7, 8, 6], [10, 11, 6]])
    out = model.generate(ids, max_new_tokens=8, num_beams=4, num_return_sequences=4, no_repeat_ngram_size=2,
                         min_new_tokens=3, eos_token_id=9)
    for row in out.tolist():
        new = row[3:]
        assert 9 not in new[:3]
        end = new.index(9) + 4 if 9 in new else len(row)
        bigrams = list(zip(row[:end], row[1:end]))
        assert len(bigrams) == len(set(bigrams)), row


def test_causal_beam_outputs():
    model = small_vocabulary_model()
    ids = torch.tensor([[7, 8, 6], [10, 11, 6]])
    out = model.generate(ids, max_new_tokens=4, num_beams=3, num_return_sequences=2, eos_token_id=9,
                         return_dict_in_generate=True, output_scores=True)
    assert isinstance(out, ours.GenerateBeamDecoderOnlyOutput)
    assert torch.equal(out.sequences, model.generate(ids, max_new_tokens=4, num_beams=3, num_return_sequences=2,
                                                     eos_token_id=9))
    # a sequence's score is its new tokens' summed log-probabilities over its length (length_penalty 1)
    with torch.no_grad():
        for row, score in zip(out.sequences, out.sequences_scores):
            new = row[3:].tolist()
            length = new.index(9) + 1 if 9 in new else len(new)
            full = row[None, : 3 + length]
            log_probs = torch.log_softmax(model(full).logits[0].float(), dim=-1)
            total = log_probs[2 : 2 + length].gather(1, full[0, 3:, None]).sum()
            assert abs(float(total) / length - float(score)) <= 1e-5
    assert len(out.scores) == out.beam_indices.shape[1] and out.scores[0].shape == (6, model.config.vocab_size)


def test_padded_batch_outputs_merge_in_order():
    _, model = causal_model("causal")
    rows = [[20, 21, 22, 23, 24], [30, 31], [40, 41, 42]]
    batch = padded_batch(model.config, rows)
    for kwargs in (dict(), dict(num_beams=2)):
        out = model.generate(**batch, max_new_tokens=3, return_dict_in_generate=True, output_scores=True, **kwargs)
        for i, row in enumerate(rows):
            alone = model.generate(torch.tensor([row]), token_type_ids=batch["token_type_ids"][i : i + 1, : len(row)],
                                   max_new_tokens=3, return_dict_in_generate=True, output_scores=True, **kwargs)
            assert torch.equal(out.sequences[i, : alone.sequences.shape[1]], alone.sequences[0])
            width = kwargs.get("num_beams", 1)
            for got, want in zip(out.scores, alone.scores):
                assert max_diff(got[i * width : (i + 1) * width], want) <= TOLERANCE
            if kwargs:
                assert max_diff(out.sequences_scores[i : i + 1], alone.sequences_scores) <= TOLERANCE
                beams = out.beam_indices[i]
                assert torch.equal(beams[beams >= 0] // 2, torch.full_like(beams[beams >= 0], i))


def test_default_and_total_lengths():
    _, model = causal_model("causal")
    ids = prompt(model.config)
    assert model.generate(ids).shape == (3, 24)  # transformers' default max_length=20: 20 new tokens
    assert model.generate(ids, max_length=9).shape == (3, 9)
    assert model.generate(ids, max_length=9, max_new_tokens=2).shape == (3, 6)  # max_new_tokens wins
    assert model.generate(ids, max_new_tokens=0).shape == (3, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_length=4), "Input length of input_ids is 4, but max_length is set to 4"),
        (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0, got -1"),
        (dict(min_new_tokens=1.5), "min_new_tokens must be an integer >= 0, got 1.5"),
        (dict(eos_token_id=99), r"eos_token_id must be a token id in \[0, 99\) \(vocab_size\), got 99"),
        (dict(eos_token_id=[]), "eos_token_id must be a token id or a non-empty list of them"),
        (dict(pad_token_id=-1), r"pad_token_id must be a token id in \[0, 99\)"),
        (dict(repetition_penalty=0.0), "repetition_penalty must be a positive number, got 0.0"),
        (dict(no_repeat_ngram_size=-2), "no_repeat_ngram_size must be an integer >= 0, got -2"),
        (dict(top_p=1.5), r"top_p must be in \[0, 1\], got 1.5"),
        (dict(top_k=-1), "top_k must be an integer >= 0, got -1"),
        (dict(do_sample=True, temperature=0), "temperature must be a positive number, got 0"),
        (dict(early_stopping="sometimes"), "early_stopping must be True, False or 'never'"),
        (dict(num_beams=0), "num_beams must be a positive integer, got 0"),
        (dict(num_beams=2, num_return_sequences=3), "num_return_sequences=3 needs num_beams >= 3"),
        (dict(num_beams=2, do_sample=True), "beam sampling"),
    ],
)
def test_bad_arguments_name_the_argument_and_limit(kwargs, message):
    _, model = causal_model("causal")
    with pytest.raises(ValueError, match=message):
        model.generate(prompt(model.config), **kwargs)


def test_missing_prompt_and_bos():
    model = ours.XLMWithLMHeadModel(tiny_config("causal", bos_token_id=None)).eval()
    with pytest.raises(ValueError, match="bos_token_id has to be defined when no input_ids are provided"):
        model.generate()
    ids = prompt(model.config)
    with pytest.raises(ValueError, match="input_ids or as inputs, not both"):
        model.generate(ids, inputs=ids)
