"""xlm.pipeline: length-grouped batches give the one-sentence-at-a-time results, in input order."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import xlm
from xlm.pipelines import FillMaskPipeline, PipelineStats, detect_framework, plan_batches
from xlm_testing import tiny_config

torch = pytest.importorskip("torch")

DATA = Path(xlm.__file__).parent / "data"
BACKENDS = ["torch", "keras"]
TOL = 1e-5


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return xlm.XLMTokenizer.from_pretrained(str(DATA / "test_tokenizer"))


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    """60 segments per language of the bundled corpus: headings, one-liners and long paragraphs."""
    with gzip.open(DATA / "lohelp" / "en-fr-de-slice.tsv.gz", "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for _, line in zip(range(60), f)]
    return {lang: [r[header.index(lang)] for r in rows] for lang in ("en", "fr", "de")}


def _torch_model(config, head: str):
    """Our PyTorch model with seeded random weights."""
    from xlm.torch_backend import XLMModel, XLMWithLMHeadModel

    torch.manual_seed(0)
    return (XLMModel if head == "base" else XLMWithLMHeadModel)(config).eval()


def _keras_twin(torch_model, directory: Path, head: str):
    """Our Keras model holding the PyTorch model's weights (loaded from its checkpoint)."""
    pytest.importorskip("tensorflow")
    from xlm.tf_backend import TFXLMModel, TFXLMWithLMHeadModel

    torch_model.save_pretrained(directory)
    return (TFXLMModel if head == "base" else TFXLMWithLMHeadModel).from_pretrained(directory)


@pytest.fixture(scope="module")
def models(tokenizer, tmp_path_factory):
    """models(backend, head, variant) -> a tiny model, built once; Keras ones hold the PyTorch weights."""
    built: dict = {}

    def get(backend: str, head: str = "base", variant: str = "default"):
        if ("torch", head, variant) not in built:
            config = tiny_config(variant, vocab_size=len(tokenizer), max_position_embeddings=256)
            built["torch", head, variant] = _torch_model(config, head)
        if (backend, head, variant) not in built:
            directory = tmp_path_factory.mktemp("twin")
            built[backend, head, variant] = _keras_twin(built["torch", head, variant], directory, head)
        return built[backend, head, variant]

    return get


def _forward(model, tokenizer, text: str, lang=None, lang_id=None, hidden_states: bool = False) -> dict:
    """What one sentence alone gives: model(**tokenizer([text])) (+ langs), as numpy."""
    enc = tokenizer([text], lang=lang, return_langs=False) if lang else tokenizer([text])
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
    if lang_id is not None:
        arrays["langs"] = np.full_like(arrays["input_ids"], lang_id)
    if detect_framework(model) == "torch":
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in arrays.items()}, output_hidden_states=hidden_states)
    else:
        out = model(**arrays, output_hidden_states=hidden_states, training=False)
    result = {k: np.asarray(out[k])[0] for k in ("last_hidden_state", "logits") if k in out}
    if hidden_states:
        result["hidden_states"] = np.asarray(out["hidden_states"][-1])[0]
    return result


def _with_mask(text: str, tokenizer, every: int = 4, first: int = 1) -> str:
    words = text.split()
    for i in range(first, len(words), every):
        words[i] = tokenizer.mask_token
    return " ".join(words)


# --- batch planning -----------------------------------------------------------------------------


def _padding_share(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    return 1 - lengths.sum() / sum(len(rows) * lengths[rows].max() for rows in batches)


def test_plan_batches_limits_and_coverage():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(3, 40, 3000), rng.integers(40, 200, 30), [500]])
    batches = plan_batches(lengths, batch_size=64, max_tokens=1024, max_padding=0.1)
    covered = np.sort(np.concatenate(batches))
    np.testing.assert_array_equal(covered, np.arange(len(lengths)))
    for rows in batches:
        assert len(rows) <= 64
        assert len(rows) * lengths[rows].max() <= 1024 or len(rows) == 1  # the 500-token one goes alone
    assert _padding_share(lengths, batches) <= 0.1
    assert max(len(rows) for rows in batches) == 64  # short sentences do fill batches


def test_plan_batches_trades_batches_for_padding_within_the_budget():
    lengths = np.array([10] * 5 + [11] * 5 + [40, 45])
    merged = plan_batches(lengths, max_padding=0.1, batch_overhead=1000)
    assert [len(rows) for rows in merged] == [10, 2]  # 4.5 % and 5.6 % padding: 5 % in all
    assert 0 < _padding_share(lengths, merged) <= 0.1
    separate = plan_batches(lengths, max_padding=0.1, batch_overhead=0)
    assert _padding_share(lengths, separate) == 0 and len(separate) == 4
    tight = plan_batches(lengths, max_padding=0.0, batch_overhead=1000)  # the budget wins
    assert _padding_share(lengths, tight) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(max_tokens=0), "max_tokens must be at least 1"),
        (dict(max_padding=1.0), r"max_padding must be in \[0, 1\)"),
        (dict(batch_overhead=-1), "batch_overhead must be non-negative"),
    ],
)
def test_plan_batches_rejects_bad_limits(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_batches([3, 4], **kwargs)


def test_padding_waste_under_ten_percent_on_corpus(models, tokenizer, corpus):
    texts = corpus["en"] + corpus["fr"] + corpus["de"]
    lengths = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])
    naive = sum(len(lengths[i : i + 32]) * lengths[i : i + 32].max() for i in range(0, len(texts), 32))
    assert 1 - lengths.sum() / naive > 0.4  # the corpus really is ragged in input order
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=models("torch"), tokenizer=tokenizer, batch_size=32)
    extractor(texts)
    stats = extractor.stats
    assert stats.sentences == len(texts) and stats.real_tokens == lengths.sum()
    assert 0 < stats.padding_waste < 0.1
    assert stats.padded_tokens == pytest.approx(stats.real_tokens / (1 - stats.padding_waste))
    assert stats.batches >= len(texts) / 32


# --- feature extraction -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_extraction_equals_single_sentences(backend, models, tokenizer, corpus):
    model = models(backend)
    texts = corpus["en"][:24] + corpus["de"][:8]
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer, batch_size=8, max_tokens=256)
    assert extractor.framework == backend
    features = extractor(texts)
    assert extractor.stats.batches > 1 and extractor.stats.padding_waste < 0.1
    assert len(features) == len(texts)
    worst = 0.0
    for text, got in zip(texts, features):
        want = _forward(model, tokenizer, text)["last_hidden_state"]
        assert got.shape == (1, *want.shape)  # transformers' shape; padding stripped: one row per real token
        got = got[0]
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_come_back_in_input_order(backend, models, tokenizer, corpus):
    texts = corpus["fr"][:30]
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=models(backend), tokenizer=tokenizer, batch_size=4)
    forward = extractor(texts)
    permutation = np.random.default_rng(1).permutation(len(texts))
    shuffled = extractor([texts[i] for i in permutation])
    for j, i in enumerate(permutation):
        np.testing.assert_allclose(shuffled[j], forward[i], atol=TOL, rtol=0)
    single = extractor(texts[3])  # one string in, one array out
    np.testing.assert_allclose(single, forward[3], atol=TOL, rtol=0)


def test_pooling(models, tokenizer, corpus):
    texts = corpus["en"][:10]
    model = models("torch")
    full = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer)(texts)
    mean = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer, pooling="mean")(texts)
    first = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer)(texts, pooling="first")
    for f, m, s in zip(full, mean, first):
        assert m.shape == s.shape == (1, model.config.emb_dim)
        np.testing.assert_allclose(m[0], f[0].mean(axis=0), atol=1e-6, rtol=0)
        np.testing.assert_array_equal(s[0], f[0, 0])
    with pytest.raises(ValueError, match="pooling must be one of"):
        xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer, pooling="max")


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_extraction_on_a_head_model_gives_encoder_states(backend, models, tokenizer, corpus):
    texts = corpus["en"][:6]
    lm = models(backend, head="lm")
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=lm, tokenizer=tokenizer)
    assert extractor.route == "encoder"  # the LM head's output layer is skipped
    for text, states in zip(texts, extractor(texts)):
        want = _forward(lm, tokenizer, text, hidden_states=True)["hidden_states"]
        np.testing.assert_allclose(states[0], want, atol=TOL, rtol=0)


def test_transformers_models_work_too(models, tokenizer, corpus, tmp_path):
    """Models from outside xlm go through their full forward: same answers on the same weights."""
    transformers = pytest.importorskip("transformers")
    ours = models("torch", head="lm")
    ours.save_pretrained(tmp_path)
    theirs = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path).eval()
    texts = [_with_mask(t, tokenizer) for t in corpus["en"][:10] if len(t.split()) > 1]
    filler = xlm.pipeline("fill-mask", model=theirs, tokenizer=tokenizer, batch_size=4)
    assert filler.route == "logits"
    want = xlm.pipeline("fill-mask", model=ours, tokenizer=tokenizer)(texts)
    for got, ref in zip(filler(texts), want):
        for got_masks, ref_masks in zip(_as_lists(got), _as_lists(ref)):
            assert [c["token"] for c in got_masks] == [c["token"] for c in ref_masks]
            np.testing.assert_allclose([c["score"] for c in got_masks], [c["score"] for c in ref_masks], atol=TOL)
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=theirs, tokenizer=tokenizer, batch_size=4)
    assert extractor.route == "hidden_states"
    ref = xlm.pipeline("feature-extraction", return_tensors=True, model=ours, tokenizer=tokenizer)(texts)
    for got, want_states in zip(extractor(texts), ref):
        np.testing.assert_allclose(got, want_states, atol=TOL, rtol=0)


# --- fill-mask ----------------------------------------------------------------------------------


def _reference_top_k(model, tokenizer, text: str, top_k: int, lang=None, lang_id=None):
    """Top-k (ids, probabilities) at each mask position of `text` run alone through the model."""
    ids = tokenizer([text])["input_ids"][0] if lang is None else tokenizer([text], lang=lang)["input_ids"][0]
    logits = _forward(model, tokenizer, text, lang, lang_id)["logits"]
    answers = []
    for pos in np.flatnonzero(np.asarray(ids) == tokenizer.mask_token_id):
        z = logits[pos].astype(np.float64)
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")[:top_k]
        answers.append((order, probs[order]))
    return answers


def _as_lists(result):
    """A fill-mask result as a list (one per mask) of top-k lists."""
    return [result] if isinstance(result[0], dict) else result


@pytest.mark.parametrize("variant", ["default", "asm"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fill_mask_equals_single_sentences(backend, variant, models, tokenizer, corpus):
    model = models(backend, head="lm", variant=variant)
    texts = [_with_mask(t, tokenizer) for t in corpus["en"][:24] if len(t.split()) > 1]
    filler = xlm.pipeline("fill-mask", model=model, tokenizer=tokenizer, batch_size=6, top_k=4)
    assert filler.route == "encoder+head"  # only the mask positions meet the output layer
    results = filler(texts)
    assert filler.stats.batches > 1
    assert any(len(_as_lists(r)) > 1 for r in results) and any(isinstance(r[0], dict) for r in results)
    for text, result in zip(texts, results):
        reference = _reference_top_k(model, tokenizer, text, top_k=4)
        got = _as_lists(result)
        assert len(got) == len(reference)
        for candidates, (want_ids, want_probs) in zip(got, reference):
            assert [c["token"] for c in candidates] == want_ids.tolist()
            np.testing.assert_allclose([c["score"] for c in candidates], want_probs, atol=TOL, rtol=0)
            assert [c["token_str"] for c in candidates] == [tokenizer.decode([i]) for i in want_ids]


def test_fill_mask_output_format(models, tokenizer):
    filler = xlm.pipeline("fill-mask", model=models("torch", head="lm"), tokenizer=tokenizer)
    assert isinstance(filler, FillMaskPipeline)
    text = f"Click {tokenizer.mask_token} to open the dialog."
    result = filler.fill_mask(text, top_k=3)
    assert len(result) == 3 and sorted(result[0]) == ["score", "sequence", "token", "token_str"]
    assert result[0]["score"] >= result[1]["score"] >= result[2]["score"]
    ids = tokenizer([text])["input_ids"][0]
    filled = [result[0]["token"] if i == tokenizer.mask_token_id else i for i in ids]
    assert result[0]["sequence"] == tokenizer.decode(filled, skip_special_tokens=True)
    assert filler(text, top_k=3) == result


def test_fill_mask_torch_and_keras_agree(models, tokenizer, corpus):
    texts = [_with_mask(t, tokenizer, every=3) for t in corpus["de"][:20] if len(t.split()) > 1]
    results = {
        backend: xlm.pipeline("fill-mask", model=models(backend, head="lm"), tokenizer=tokenizer, top_k=5)(texts)
        for backend in BACKENDS
    }
    for pt, tf in zip(results["torch"], results["keras"]):
        for pt_masks, tf_masks in zip(_as_lists(pt), _as_lists(tf)):
            assert [c["token"] for c in pt_masks] == [c["token"] for c in tf_masks]
            np.testing.assert_allclose(
                [c["score"] for c in pt_masks], [c["score"] for c in tf_masks], atol=TOL, rtol=0
            )


def test_fill_mask_needs_a_mask_and_an_lm_head(models, tokenizer):
    filler = xlm.pipeline("fill-mask", model=models("torch", head="lm"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"input 1 holds no mask token \(<special1>\)"):
        filler([f"A {tokenizer.mask_token}.", "No mask here."])
    with pytest.raises(TypeError, match="fill-mask needs a model with an LM head.*got XLMModel"):
        xlm.pipeline("fill-mask", model=models("torch"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        filler(f"A {tokenizer.mask_token}.", top_k=0)


# --- languages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_lang_sets_langs_ids(backend, models, tokenizer, corpus):
    model = models(backend, head="lm", variant="multilang")
    lang2id = tokenizer.lang2id
    texts = [_with_mask(t, tokenizer) for t in corpus["fr"][:12] if len(t.split()) > 1]
    filler = xlm.pipeline("fill-mask", model=model, tokenizer=tokenizer, batch_size=4, lang="fr")
    as_fr = filler(texts)
    as_en = filler(texts, lang="en")
    for text, fr, en in zip(texts, as_fr, as_en):
        for lang, result in (("fr", fr), ("en", en)):
            reference = _reference_top_k(model, tokenizer, text, 5, lang=lang, lang_id=lang2id[lang])
            for candidates, (want_ids, want_probs) in zip(_as_lists(result), reference):
                assert [c["token"] for c in candidates] == want_ids.tolist()
                np.testing.assert_allclose([c["score"] for c in candidates], want_probs, atol=TOL, rtol=0)
    assert as_fr != as_en  # the language embedding really reaches the model


def test_lang_per_input(models, tokenizer, corpus):
    model = models("torch", variant="multilang")
    texts = corpus["en"][:5] + corpus["de"][:5]
    langs = ["en"] * 5 + ["de"] * 5
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer)
    mixed = extractor(texts, lang=langs)
    for text, lang, got in zip(texts, langs, mixed):
        want = _forward(model, tokenizer, text, lang, tokenizer.lang2id[lang])["last_hidden_state"]
        np.testing.assert_allclose(got[0], want, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="lang has 2 entries for 10 inputs"):
        extractor(texts, lang=["en", "de"])
    with pytest.raises(ValueError, match="unknown language 'xx'; this model knows de, en, fr"):
        extractor(texts[:1], lang="xx")


# --- edge cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input_list(backend, models, tokenizer):
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=models(backend), tokenizer=tokenizer)
    assert extractor([]) == []
    assert extractor.stats == PipelineStats() and extractor.stats.padding_waste == 0.0


def test_bad_task_and_bad_model(models, tokenizer):
    with pytest.raises(ValueError, match="unknown task 'translation'; supported tasks: feature-extraction, fill-mask, text-classification"):
        xlm.pipeline("translation", model=models("torch"), tokenizer=tokenizer)
    with pytest.raises(TypeError, match="model must be a PyTorch module .* or a Keras model .*got builtins.dict"):
        xlm.pipeline("feature-extraction", return_tensors=True, model={}, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="a tokenizer is needed"):
        xlm.pipeline("feature-extraction", return_tensors=True, model=models("torch"))
    with pytest.raises(TypeError, match="input 1 must be a string, got int"):
        xlm.pipeline("feature-extraction", return_tensors=True, model=models("torch"), tokenizer=tokenizer)(["fine", 3])


def test_too_long_input(models, tokenizer):
    model = models("torch")
    long_text = " ".join(["documentation"] * 400)
    extractor = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"input 1 has \d+ tokens, more than max_position_embeddings = 256"):
        extractor(["short", long_text])
    truncated = xlm.pipeline("feature-extraction", return_tensors=True, model=model, tokenizer=tokenizer, truncation=True)(long_text)
    assert truncated.shape == (1, 256, model.config.emb_dim)


def test_pipeline_is_the_function_after_importing_its_module():
    import xlm.pipelines  # noqa: F401  (the module is named apart so this cannot shadow the function)

    assert callable(xlm.pipeline) and xlm.pipeline is xlm.pipelines.pipeline
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        xlm.pipeline("nope", model=None, tokenizer=None)


def test_model_and_tokenizer_from_a_directory(models, tokenizer, tmp_path):
    lm = models("torch", head="lm")
    lm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    text = f"Choose {tokenizer.mask_token} from the menu."
    loaded = xlm.pipeline("fill-mask", model=str(tmp_path), framework="torch")
    assert loaded.framework == "torch" and type(loaded.model).__name__ == "XLMWithLMHeadModel"
    want = xlm.pipeline("fill-mask", model=lm, tokenizer=tokenizer)(text)
    got = loaded(text)
    assert [c["token"] for c in got] == [c["token"] for c in want]
    np.testing.assert_allclose([c["score"] for c in got], [c["score"] for c in want], atol=TOL, rtol=0)
