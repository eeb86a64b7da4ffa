"""generate() of the Keras LM head: the PyTorch twin's tokens for greedy and beam search (cached or not, with
languages, eos and padded batches), seeded sampling and its distribution, filter_logits, and the refusals;
transformers' arguments and masked-LM generation against the PyTorch twin (tokens, scores) and, for masked
LMs, transformers' TF class. On every Keras backend."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import keras  # noqa: E402
import xlm  # noqa: E402
from tf_helpers import to_np  # noqa: E402
from xlm_testing import make_inputs, tiny_config  # noqa: E402
import xlm.torch_backend as pt  # noqa: E402
from xlm.tf_backend import TFXLMWithLMHeadModel, filter_logits  # noqa: E402

pytestmark = pytest.mark.keras_backends
CAUSAL_OVERRIDES = {
    "causal": {},
    "asm": {"causal": True},
    "sinusoidal": {"causal": True, "n_langs": 3},
}


def twins(variant: str = "causal", seed: int = 0, **overrides):
    """A causal Keras LM and its PyTorch twin holding the same random weights."""
    torch.manual_seed(seed)
    config = tiny_config(variant, **{**CAUSAL_OVERRIDES.get(variant, {}), **overrides})
    twin = pt.XLMWithLMHeadModel(config).eval()
    model = TFXLMWithLMHeadModel(config)
    model.load_state_dict({name: value.numpy() for name, value in twin.state_dict().items()})
    return model, twin


def small_vocabulary_twins():
    """Causal twins over 12 words, with weights large enough to give varied distributions (the PyTorch
    tests check beam search on this model against exhaustive search)."""
    return twins("default", causal=True, vocab_size=12, n_langs=2, init_std=0.3)


def prompts(config, length: int = 4) -> np.ndarray:
    return make_inputs(config, batch=3, seq_len=length, pad=False)["input_ids"]


@pytest.mark.parametrize("variant", list(CAUSAL_OVERRIDES))
def test_greedy_equals_the_pytorch_twin(variant):
    model, twin = twins(variant)
    ids = prompts(model.config)
    langs = np.zeros_like(ids)
    langs[0] = model.config.n_langs - 1  # per-row languages
    for kwargs in ({"langs": 1 % model.config.n_langs}, {"langs": langs}, {}):
        torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        expected = twin.generate(torch.from_numpy(ids), max_new_tokens=6, **torch_kwargs).numpy()
        out = model.generate(ids, max_new_tokens=6, **kwargs)
        # the prompts' dtype as the backend holds it (JAX keeps 64-bit integers only with jax_enable_x64)
        assert keras.ops.is_tensor(out)
        assert keras.backend.standardize_dtype(out.dtype) == keras.backend.standardize_dtype(
            keras.ops.convert_to_tensor(ids).dtype)
        np.testing.assert_array_equal(to_np(out), expected)
        np.testing.assert_array_equal(to_np(model.generate(ids, max_new_tokens=6, use_cache=False, **kwargs)),
                                      expected)
    int32_out = model.generate(keras.ops.convert_to_tensor(ids, "int32"), max_new_tokens=2)
    assert keras.backend.standardize_dtype(int32_out.dtype) == "int32"


def test_eos_stops_pads_and_equals_the_pytorch_twin():
    model, twin = twins()
    ids = prompts(model.config)
    free = to_np(model.generate(ids, max_new_tokens=6))
    eos = int(free[0, 5])  # the token row 0 produces second
    out = to_np(model.generate(ids, max_new_tokens=6, eos_token_id=eos))
    np.testing.assert_array_equal(out, twin.generate(torch.from_numpy(ids), max_new_tokens=6, eos_token_id=eos))
    first_eos = int(np.flatnonzero(out[0, 4:] == eos)[0]) + 4
    assert (out[0, first_eos + 1 :] == model.config.pad_index).all()
    np.testing.assert_array_equal(out[0, : first_eos + 1], free[0, : first_eos + 1])


def test_generation_stops_at_the_position_table():
    model, _ = twins()
    ids = make_inputs(model.config, batch=1, seq_len=60, pad=False)["input_ids"]
    assert model.generate(ids, max_new_tokens=10).shape == (1, model.config.max_position_embeddings)


@pytest.mark.parametrize("eos, length_penalty", [(None, 1.0), (7, 0.0), (7, 1.0)])
def test_beam_search_with_a_beam_for_every_prefix_equals_the_pytorch_twin(eos, length_penalty):
    """144 beams hold every 2-token prefix: the twin's search is then exhaustive search (its tests check that),
    and ours must return the same 3 best sequences of each prompt."""
    model, twin = small_vocabulary_twins()
    ids, langs = np.array([[7, 8, 6], [10, 11, 6]]), np.array([[0] * 3, [1] * 3])
    kwargs = dict(max_new_tokens=3, num_beams=144, num_return_sequences=3, eos_token_id=eos,
                  length_penalty=length_penalty)
    expected = twin.generate(torch.from_numpy(ids), langs=torch.from_numpy(langs), **kwargs).numpy()
    out = to_np(model.generate(ids, langs=langs, **kwargs))
    np.testing.assert_array_equal(out, expected)
    if eos is not None:
        assert (out[:, 3:] == model.config.pad_index).any()  # finished sequences are among the results


@pytest.mark.parametrize("early_stopping", [False, True])
def test_beam_search_cached_uncached_and_early_stopping_equal_the_pytorch_twin(early_stopping):
    model, twin = small_vocabulary_twins()
    ids = np.array([[7, 8, 6], [10, 11, 6]])
    kwargs = dict(max_new_tokens=6, num_beams=3, num_return_sequences=2, eos_token_id=9,
                  early_stopping=early_stopping, length_penalty=0.5)
    expected = twin.generate(torch.from_numpy(ids), **kwargs).numpy()
    np.testing.assert_array_equal(to_np(model.generate(ids, **kwargs)), expected)
    np.testing.assert_array_equal(to_np(model.generate(ids, use_cache=False, **kwargs)), expected)
    np.testing.assert_array_equal(to_np(model.generate(ids, max_new_tokens=5, num_beams=1)),
                                  to_np(model.generate(ids, max_new_tokens=5)))


@pytest.mark.parametrize(("top_k", "top_p", "temperature"), [(0, 1.0, 1.0), (5, 1.0, 0.7), (0, 0.8, 1.3)])
def test_sampling_is_seeded_and_cached_equals_uncached(top_k, top_p, temperature):
    model, _ = twins()
    ids = prompts(model.config)
    kwargs = dict(max_new_tokens=8, do_sample=True, top_k=top_k, top_p=top_p, temperature=temperature)
    runs = [to_np(model.generate(ids, use_cache=use_cache, seed=7, **kwargs)) for use_cache in (True, False)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(to_np(model.generate(ids, seed=8, **kwargs)), runs[0])
    generator = keras.random.SeedGenerator(7)
    first, second = (to_np(model.generate(ids, seed=generator, **kwargs)) for _ in range(2))
    assert not np.array_equal(first, second)  # a generator moves on between calls


def test_top_k_one_is_greedy_and_samples_repeat_each_prompt():
    model, _ = twins()
    ids = prompts(model.config)
    sampled = model.generate(ids, max_new_tokens=5, do_sample=True, top_k=1, seed=0)
    np.testing.assert_array_equal(to_np(sampled), to_np(model.generate(ids, max_new_tokens=5)))
    samples = to_np(model.generate(ids, max_new_tokens=5, do_sample=True, num_return_sequences=4, seed=0))
    assert samples.shape == (12, 9)
    np.testing.assert_array_equal(samples[:, :4], np.repeat(ids, 4, axis=0))


def test_samples_follow_the_filtered_distribution():
    """4,000 draws of the first new token: each token's frequency within 5 standard errors of its probability
    after temperature and top-k (computed from the PyTorch twin's logits), and none outside the top k."""
    model, twin = twins()
    ids = np.repeat(prompts(model.config)[:1], 4000, axis=0)
    with torch.no_grad():
        logits = twin(torch.from_numpy(ids[:1])).logits[0, -1] / 0.7
    probs = torch.softmax(pt.filter_logits(logits[None], top_k=4)[0], dim=-1).numpy()
    drawn = to_np(model.generate(ids, max_new_tokens=1, do_sample=True, temperature=0.7, top_k=4, seed=1))[:, -1]
    frequencies = np.bincount(drawn, minlength=len(probs)) / len(drawn)
    assert (frequencies[probs == 0] == 0).all()
    assert np.sort(probs)[-4] > 0.05  # four likely tokens: the test sees their proportions
    error = np.sqrt(probs * (1 - probs) / len(drawn))
    assert (np.abs(frequencies - probs) <= 5 * error + 1e-9).all(), (frequencies[probs > 0], probs[probs > 0])


def test_filter_logits_equals_the_pytorch_twin():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32))
    assert np.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert np.isinf(filter_logits(logits, top_p=0.6)).tolist() == [[False, False, True, True]]
    assert np.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert np.isinf(filter_logits(logits, top_p=0.81)).tolist() == [[False, False, False, True]]
    assert np.isinf(filter_logits(logits[:, [2, 0, 3, 1]], top_p=0.6)).tolist() == [[True, False, True, False]]
    scores = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32) * 3
    for top_k, top_p, keep in ((0, 1.0, 1), (7, 1.0, 1), (0, 0.9, 1), (10, 0.5, 1), (50, 0.99, 1), (1, 0.0, 3)):
        expected = pt.filter_logits(torch.from_numpy(scores), top_k, top_p, keep).numpy()
        np.testing.assert_array_equal(to_np(filter_logits(scores, top_k, top_p, keep)), expected)


def test_refusals_name_the_problem():
    model, _ = twins()
    ids = prompts(model.config)
    with pytest.raises(ValueError, match="beam sampling"):
        model.generate(ids, num_beams=2, do_sample=True)
    with pytest.raises(ValueError, match="num_return_sequences=3 needs num_beams >= 3"):
        model.generate(ids, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, prompt_len\) with prompt_len >= 1, got \[3\]"):
        model.generate(ids[:, 0])
    with pytest.raises(ValueError, match="integer token ids, got dtype float32"):
        model.generate(ids.astype(np.float32))
    with pytest.raises(ValueError, match="temperature must be a positive number, got 0"):
        model.generate(ids, do_sample=True, temperature=0)


@pytest.mark.parametrize("kwargs", [{}, {"num_beams": 3, "num_return_sequences": 2}, {"eos_token_id": 30}])
def test_a_padded_batch_with_token_types_equals_the_pytorch_twin(kwargs):
    """Right-padded prompts of several lengths (the PyTorch tests check each row against the prompt alone)."""
    model, twin = twins()
    rows = [[20, 21, 22, 23, 24], [30, 31], [40, 41, 42], [50, 51]]
    ids = np.full((4, 5), model.config.pad_index)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    types = (np.arange(5) % 2 + 20)[None].repeat(4, 0) * mask
    expected = twin.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), langs=1,
                             token_type_ids=torch.from_numpy(types), max_new_tokens=4, **kwargs).numpy()
    out = model.generate(ids, attention_mask=mask, token_type_ids=types, langs=1, max_new_tokens=4, **kwargs)
    np.testing.assert_array_equal(to_np(out), expected)
    copies = kwargs.get("num_return_sequences", 1)
    assert (expected[copies : 2 * copies, 6:] == model.config.pad_index).all()  # a 2-token prompt's rows end padded
    with pytest.raises(ValueError, match="attention_mask row 1 has padding before a token"):
        model.generate(ids, attention_mask=mask[:, ::-1])


def test_a_tokenizer_batch_goes_in_as_it_comes_out():
    from xlm import XLMTokenizer

    tokenizer = XLMTokenizer.from_pretrained(os.path.join(os.path.dirname(xlm.__file__), "data", "default_model"))
    model, twin = twins(vocab_size=len(tokenizer))
    texts = ["Open the file.", "Click the button to save all of your documents."]
    tensors = "tf" if keras.backend.backend() == "tensorflow" else "np"
    out = model.generate(**tokenizer(texts, padding=True, return_tensors=tensors), max_new_tokens=3, num_beams=2)
    expected = twin.generate(**tokenizer(texts, padding=True, return_tensors="pt"), max_new_tokens=3, num_beams=2)
    np.testing.assert_array_equal(to_np(out), expected.numpy())


# --- transformers' arguments and masked-LM generation ------------------------------------------------------------

def masked_lm_twins():
    """A masked LM (lang_id 1) with weights large enough that greedy tokens vary, and its PyTorch twin."""
    config = tiny_config("multilang", lang_id=1)
    torch.manual_seed(0)
    twin = pt.XLMWithLMHeadModel(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in twin.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model = TFXLMWithLMHeadModel(config)
    model.load_state_dict({name: value.numpy() for name, value in twin.state_dict().items()})
    return model, twin


ARGUMENT_CASES = {
    "max_length": dict(max_length=9),
    "default length": dict(),
    "repetition_penalty": dict(max_new_tokens=6, repetition_penalty=1.7),
    "no_repeat_ngram_size": dict(max_new_tokens=8, no_repeat_ngram_size=2),
    "eos, scores, logits": dict(max_new_tokens=8, eos_token_id="eos", return_dict_in_generate=True,
                                output_scores=True, output_logits=True),
    "eos list, min_new_tokens": dict(max_new_tokens=8, eos_token_id=["eos", "other"], min_new_tokens=3,
                                     return_dict_in_generate=True, output_scores=True),
    "min_length, pad_token_id": dict(max_new_tokens=8, eos_token_id="eos", min_length=8, pad_token_id=0),
    "beams, scores": dict(max_new_tokens=6, num_beams=3, num_return_sequences=2, eos_token_id="eos",
                          return_dict_in_generate=True, output_scores=True, output_logits=True),
    "beams, never, processors": dict(max_new_tokens=7, num_beams=4, eos_token_id=["other", "eos"],
                                     length_penalty=2.0, early_stopping="never", repetition_penalty=1.2,
                                     no_repeat_ngram_size=2, return_dict_in_generate=True, output_scores=True),
    "padded, scores": dict(max_new_tokens=4, padded=True, eos_token_id="eos", return_dict_in_generate=True,
                           output_scores=True),
    "padded beams": dict(max_new_tokens=4, padded=True, num_beams=2, return_dict_in_generate=True,
                         output_scores=True),
}


def resolve_case(kwargs: dict, free: np.ndarray, prompt_len: int) -> dict:
    """The case with its "eos" / "other" stand-ins replaced by tokens of the free greedy run `free`."""
    names = {"eos": int(free[0, prompt_len + 2]), "other": int(free[1, prompt_len + 1])}
    kwargs = dict(kwargs)
    eos = kwargs.get("eos_token_id")
    if eos is not None:
        kwargs["eos_token_id"] = [names[e] for e in eos] if isinstance(eos, list) else names[eos]
    return kwargs


def assert_same_generation(ours, expected) -> None:
    """Our Keras output equals the PyTorch twin's: the class, the sequences, scores within 1e-5 (-inf at the same
    places), beam indices."""
    if isinstance(expected, torch.Tensor):
        np.testing.assert_array_equal(to_np(ours), expected.numpy())
        return
    assert type(ours).__name__ == type(expected).__name__
    assert list(ours.keys()) == list(expected.keys())
    np.testing.assert_array_equal(to_np(ours.sequences), expected.sequences.numpy())
    for name in ("scores", "logits"):
        if getattr(expected, name) is not None:
            assert len(getattr(ours, name)) == len(getattr(expected, name))
            for got, want in zip(getattr(ours, name), getattr(expected, name)):
                got, want = to_np(got), want.numpy()
                np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
                np.testing.assert_allclose(np.nan_to_num(got, neginf=0), np.nan_to_num(want, neginf=0), atol=1e-5)
    if getattr(expected, "sequences_scores", None) is not None:
        np.testing.assert_allclose(to_np(ours.sequences_scores), expected.sequences_scores.numpy(), atol=1e-5)
    if getattr(expected, "beam_indices", None) is not None:
        np.testing.assert_array_equal(to_np(ours.beam_indices), expected.beam_indices.numpy())


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
@pytest.mark.parametrize("kind", ["causal", "masked LM"])
def test_arguments_equal_the_pytorch_twin(kind, case):
    """Every transformers argument on both kinds of model: the twin's tokens and scores (the PyTorch tests
    check the masked LM against transformers and the causal processors against transformers' processors)."""
    model, twin = twins() if kind == "causal" else masked_lm_twins()
    ids = prompts(model.config, length=5)
    kwargs = resolve_case(ARGUMENT_CASES[case], to_np(model.generate(ids, max_new_tokens=8)), 5)
    inputs = {"input_ids": ids}
    if kwargs.pop("padded", False):
        mask = np.ones_like(ids)
        mask[1, 3:] = mask[2, 2:] = 0
        inputs = {"input_ids": np.where(mask == 1, ids, model.config.pad_index), "attention_mask": mask}
    expected = twin.generate(**{k: torch.from_numpy(v) for k, v in inputs.items()}, **kwargs)
    assert_same_generation(model.generate(**inputs, **kwargs), expected)


def test_generation_config_and_bos_equal_the_pytorch_twin():
    model, twin = masked_lm_twins()
    assert model.generation_config == twin.generation_config
    assert (model.generation_config.pad_token_id, model.generation_config.top_k) == (2, 50)
    settings = xlm.GenerationConfig(max_new_tokens=4, num_beams=2, no_repeat_ngram_size=2)
    ids = prompts(model.config, length=5)
    np.testing.assert_array_equal(to_np(model.generate(ids, settings)), twin.generate(torch.from_numpy(ids), settings))
    np.testing.assert_array_equal(to_np(model.generate(max_new_tokens=3)), twin.generate(max_new_tokens=3))
    with pytest.raises(ValueError, match="Input length of input_ids is 5, but max_length is set to 5"):
        model.generate(ids, max_length=5)
    with pytest.raises(ValueError, match=r"eos_token_id must be a token id in \[0, 99\)"):
        model.generate(ids, eos_token_id=[3, 120])
    with pytest.raises(ValueError, match="repetition_penalty must be a positive number, got -1"):
        model.generate(ids, repetition_penalty=-1)


@pytest.mark.parametrize("kwargs", [dict(max_new_tokens=6), dict(max_new_tokens=6, repetition_penalty=1.5,
                                                                  no_repeat_ngram_size=2),
                                    dict(max_length=9, min_length=8, eos_token_id="eos"),
                                    dict(max_new_tokens=5, num_beams=3, num_return_sequences=2)])
def test_masked_lm_equals_transformers_tf(kwargs):
    """transformers' TFXLMWithLMHeadModel (tf-keras) generates the same tokens where it takes the argument."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    import tensorflow as tf
    from tf_helpers import hf_tf_model, torch_state

    model, twin = masked_lm_twins()
    ids = prompts(model.config, length=5)
    kwargs = resolve_case(kwargs, to_np(model.generate(ids, max_new_tokens=8)), 5)
    reference = hf_tf_model(model.config, "XLMWithLMHeadModel", torch_state(twin))
    np.testing.assert_array_equal(to_np(model.generate(ids, **kwargs)), reference.generate(tf.constant(ids),
                                                                                          **kwargs).numpy())
