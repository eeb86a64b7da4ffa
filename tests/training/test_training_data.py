"""xlm.training_data: masking statistics, stream packing, TLM and pair layouts, corpus reading."""

import gzip
import os

import numpy as np
import pytest

from training_helpers import LANGS, synthetic_corpus
from xlm.training_data import (
    IGNORE_INDEX,
    MaskingConfig,
    TokenIds,
    TrainingBatches,
    ExampleGroup,
    batches_from,
    classification_batches,
    collate,
    count_targets,
    default_corpus_path,
    encode_sentences,
    make_lang2id,
    mask_tokens,
    pack_stream,
    pair_classification_examples,
    pretraining_batches,
    read_parallel_corpus,
    shard_batch,
    stream_examples,
    translation_pair_examples,
    unigram_baseline,
    warmup_linear_decay,
)

IDS = TokenIds(vocab_size=99)  # <s>=0 </s>=1 <pad>=2 <unk>=3 mask=5, specials 0..13


# --- masking ------------------------------------------------------------------------------------
def _sample_ids(shape, seed=0):
    """Random ids with every special id present and right padding on each row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, IDS.vocab_size, size=shape)
    lengths = rng.integers(shape[1] // 2, shape[1] + 1, size=shape[0])
    ids[np.arange(shape[1])[None, :] >= lengths[:, None]] = IDS.pad
    return ids


@pytest.mark.parametrize("probability", [0.15, 0.3])
def test_masking_rates_and_80_10_10(probability):
    ids = _sample_ids((400, 512))
    corrupted, labels = mask_tokens(ids, np.random.default_rng(1), IDS, MaskingConfig(probability=probability))
    special = np.isin(ids, IDS.special_ids)
    chosen = labels != IGNORE_INDEX
    eligible = ~special
    assert special.sum() > 10_000 and (ids == IDS.pad).sum() > 10_000  # the sample really holds them
    # Rate among eligible tokens (n ≈ 150k: standard error < 0.0012).
    assert abs(chosen[eligible].mean() - probability) < 0.005
    # Never a special token or padding; labels are the original ids exactly where chosen.
    assert not (chosen & special).any()
    np.testing.assert_array_equal(corrupted[special], ids[special])
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    np.testing.assert_array_equal(corrupted[~chosen], ids[~chosen])
    # 80 % mask token / 10 % random regular token / 10 % unchanged (a random draw may equal the
    # original: 1 chance in the number of regular ids).
    n_regular = IDS.regular_ids.size
    to_mask = corrupted[chosen] == IDS.mask
    unchanged = corrupted[chosen] == ids[chosen]
    randomised = ~to_mask & ~unchanged
    assert abs(to_mask.mean() - 0.8) < 0.01
    assert abs(randomised.mean() - 0.1 * (1 - 1 / n_regular)) < 0.01
    assert abs(unchanged.mean() - 0.1 * (1 + 1 / n_regular)) < 0.01
    assert not np.isin(corrupted[chosen][randomised], IDS.special_ids).any()


def test_masking_other_fractions_and_at_least_one_target():
    ids = _sample_ids((200, 256), seed=3)
    corrupted, labels = mask_tokens(ids, np.random.default_rng(0), IDS, MaskingConfig(0.2, mask_fraction=0.5, random_fraction=0.5))
    chosen = labels != IGNORE_INDEX
    assert abs((corrupted[chosen] == IDS.mask).mean() - 0.5) < 0.02
    # A tiny row still gets one target, never on its specials.
    tiny = np.array([[IDS.eos, 40, IDS.eos, IDS.pad]])
    for seed in range(20):
        _, labels = mask_tokens(tiny, np.random.default_rng(seed), IDS, MaskingConfig(0.01))
        np.testing.assert_array_equal(labels, [[IGNORE_INDEX, 40, IGNORE_INDEX, IGNORE_INDEX]])
    with pytest.raises(ValueError, match="probability"):
        MaskingConfig(probability=0.0)
    with pytest.raises(ValueError, match="sum of at most 1"):
        MaskingConfig(mask_fraction=0.8, random_fraction=0.3)


def test_new_masks_every_epoch_and_deterministic():
    corpus = synthetic_corpus(120)
    lang2id = make_lang2id(LANGS)
    examples = stream_examples(corpus["en"], lang2id["en"], IDS, bptt=16)
    batches = TrainingBatches([ExampleGroup("mlm:en", examples, masked=True)], 4, IDS, seed=7, shuffle=False)
    n = len(batches)
    again = TrainingBatches([ExampleGroup("mlm:en", examples, masked=True)], 4, IDS, seed=7, shuffle=False)
    other_seed = TrainingBatches([ExampleGroup("mlm:en", examples, masked=True)], 4, IDS, seed=8, shuffle=False)

    def original(batch):
        return np.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])

    for step in (0, 1, n - 1):
        first, second = batches[step], batches[step + n]
        np.testing.assert_array_equal(original(first), original(second))  # same rows (no shuffle)
        assert not np.array_equal(first["labels"], second["labels"])  # new masks in epoch 1
        for key in first:
            np.testing.assert_array_equal(first[key], again[step][key])  # same seed, same batch
        assert not np.array_equal(first["labels"], other_seed[step]["labels"])
    # Random access equals sequential iteration, in any order.
    sequential = list(batches.iter_steps(0, 2 * n))
    for step in reversed(range(2 * n)):
        np.testing.assert_array_equal(batches[step]["input_ids"], sequential[step]["input_ids"])


def test_shuffled_epochs_visit_every_row_once():
    examples = [{"input_ids": np.array([20 + i, 1]), "langs": np.zeros(2, int), "position_ids": np.arange(2)} for i in range(10)]
    batches = TrainingBatches([ExampleGroup("g", examples)], 3, IDS, seed=0)
    assert len(batches) == 3  # the incomplete batch is dropped
    for epoch in range(3):
        seen = np.concatenate([batches[epoch * 3 + i]["input_ids"][:, 0] for i in range(3)])
        assert len(set(seen)) == 9 and set(seen) <= set(range(20, 30))
    orders = {tuple(batches[e * 3]["input_ids"][:, 0]) for e in range(4)}
    assert len(orders) > 1  # each epoch reshuffles


# --- CLM / MLM streams --------------------------------------------------------------------------
def test_pack_stream_layout():
    sentences = [np.arange(20, 20 + n) for n in (3, 5, 0, 4, 7, 2)]
    stream = [1]
    for s in sentences:
        if len(s):
            stream += list(s) + [1]
    rows = pack_stream(sentences, eos=1, length=6)
    assert rows.shape == (len(stream) // 6, 6)
    np.testing.assert_array_equal(rows.reshape(-1), stream[: rows.size])
    overlapping = pack_stream(sentences, eos=1, length=7, stride=6)
    np.testing.assert_array_equal(overlapping[:, :6].reshape(-1), stream[: overlapping.shape[0] * 6])
    np.testing.assert_array_equal(overlapping[:-1, 6], overlapping[1:, 0])
    assert pack_stream([[20, 21]], eos=1, length=8).shape == (0, 8)


def test_stream_examples_mlm_and_clm():
    corpus = synthetic_corpus(60)
    mlm = stream_examples(corpus["fr"], 2, IDS, bptt=16)
    clm = stream_examples(corpus["fr"], 2, IDS, bptt=16, causal=True)
    stream = np.concatenate([np.concatenate([[IDS.eos], s]) for s in corpus["fr"]] + [[IDS.eos]])
    for i, example in enumerate(mlm):
        np.testing.assert_array_equal(example["input_ids"], stream[16 * i : 16 * (i + 1)])
        np.testing.assert_array_equal(example["langs"], np.full(16, 2))
        np.testing.assert_array_equal(example["position_ids"], np.arange(16))
        assert "labels" not in example
    for i, example in enumerate(clm):  # labels are the next tokens (the models do not shift)
        np.testing.assert_array_equal(example["input_ids"], stream[16 * i : 16 * (i + 1)])
        np.testing.assert_array_equal(example["labels"], stream[16 * i + 1 : 16 * (i + 1) + 1])


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_one_language_per_batch(objective):
    corpus = synthetic_corpus(150)
    lang2id = make_lang2id(LANGS)
    batches = pretraining_batches(corpus, objective, lang2id, IDS, batch_size=4, bptt=16, seed=1)
    seen = set()
    for step in range(len(batches)):
        batch, group = batches[step], batches.group_of(step)
        lang = group.split(":")[1]
        seen.add(lang)
        assert group.startswith(objective)
        assert batch["input_ids"].shape == (4, 16) and batch["attention_mask"].all()
        np.testing.assert_array_equal(batch["langs"], lang2id[lang])
        original = np.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])
        tokens = original[~np.isin(original, IDS.special_ids)]
        offset = 14 + 25 * LANGS.index(lang)  # synthetic_corpus' token range of that language
        assert ((tokens >= offset) & (tokens < offset + 20)).all()
        if objective == "clm":
            assert (batch["labels"] != IGNORE_INDEX).all()
    assert seen == set(LANGS)


# --- TLM ----------------------------------------------------------------------------------------
def test_tlm_positions_languages_and_padding():
    source = [np.array([20, 21, 22]), np.array([30]), np.arange(40, 60)]
    target = [np.array([70, 71]), np.array([80, 81, 82, 83]), np.arange(60, 75)]
    examples = translation_pair_examples(source, target, 1, 2, IDS, max_length=24)
    batch = collate(examples, IDS)
    assert batch["input_ids"].shape == (3, 24)
    e = IDS.eos
    np.testing.assert_array_equal(batch["input_ids"][0, :9], [e, 20, 21, 22, e, e, 70, 71, e])
    np.testing.assert_array_equal(batch["position_ids"][0, :9], [0, 1, 2, 3, 4, 0, 1, 2, 3])
    np.testing.assert_array_equal(batch["langs"][0, :9], [1] * 5 + [2] * 4)
    np.testing.assert_array_equal(batch["attention_mask"][0], [1] * 9 + [0] * 15)
    assert (batch["input_ids"][0, 9:] == IDS.pad).all() and (batch["labels"] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(batch["position_ids"][1, :9], [0, 1, 2, 0, 1, 2, 3, 4, 5])
    # The long pair is cut to max_length, from its longer side, keeping both separators each.
    long_row = batch["input_ids"][2]
    assert batch["attention_mask"][2].all() and list(long_row).count(e) == 4
    first_len = int(np.flatnonzero(long_row == e)[1]) + 1
    assert first_len - 2 == 10 and 24 - first_len - 2 == 10  # 20 + 15 tokens → 10 + 10
    np.testing.assert_array_equal(batch["position_ids"][2], list(range(first_len)) + list(range(24 - first_len)))


def test_tlm_batches_from_corpus_are_masked_pairs():
    corpus = synthetic_corpus(100)
    lang2id = make_lang2id(LANGS)
    batches = pretraining_batches(corpus, "tlm", lang2id, IDS, batch_size=4, bptt=32, seed=0)
    groups = {batches.group_of(s) for s in range(len(batches))}
    assert groups == {f"tlm:{a}-{b}" for a in LANGS for b in LANGS if a != b}
    # Each aligned pair is used once per language pair, half in each order: 3 pairs × 2 orders ×
    # (50 rows // 4) batches.
    assert len(batches) == 3 * 2 * (50 // 4)
    for step in range(12):
        batch = batches[step]
        src, tgt = batches.group_of(step)[4:].split("-")
        for row in range(4):
            mask = batch["attention_mask"][row] == 1
            positions = batch["position_ids"][row][mask]
            restart = int(np.flatnonzero(positions == 0)[1])
            np.testing.assert_array_equal(batch["langs"][row][mask], [lang2id[src]] * restart + [lang2id[tgt]] * (mask.sum() - restart))
            original = np.where(batch["labels"][row] != IGNORE_INDEX, batch["labels"][row], batch["input_ids"][row])[mask]
            # The two halves are translations: the same synthetic sentence under each language's offset.
            a, b = original[1 : restart - 1], original[restart + 1 : -1]
            np.testing.assert_array_equal(a - 25 * LANGS.index(src), b - 25 * LANGS.index(tgt))
        assert (batch["labels"] != IGNORE_INDEX).any()
        assert not (batch["labels"][batch["attention_mask"] == 0] != IGNORE_INDEX).any()


# --- sentence-pair classification ---------------------------------------------------------------
def test_pair_classification_examples():
    rng = np.random.default_rng(0)
    source = [rng.integers(14, 99, size=rng.integers(2, 9)) for _ in range(50)]
    target = [s + 1 for s in source]
    examples = pair_classification_examples(source, target, 0, 2, IDS, seed=3, max_length=16)
    assert len(examples) == 100 and sum(int(e["labels"]) for e in examples) == 50
    sources = {tuple(s): i for i, s in enumerate(source)}
    for example in examples:
        ids = example["input_ids"]
        assert ids[0] == IDS.bos and ids[-1] == IDS.eos and list(ids).count(IDS.eos) == 2 and len(ids) <= 16
        sep = int(np.flatnonzero(ids == IDS.eos)[0])
        a, b = ids[1:sep], ids[sep + 1 : -1]
        np.testing.assert_array_equal(example["langs"], [0] * (sep + 1) + [2] * (len(ids) - sep - 1))
        np.testing.assert_array_equal(example["position_ids"], np.arange(len(ids)))
        if tuple(a) in sources:  # untruncated
            i = sources[tuple(a)]
            is_translation = len(b) == len(target[i]) and (b == target[i]).all()
            assert is_translation == bool(example["labels"])
    again = pair_classification_examples(source, target, 0, 2, IDS, seed=3, max_length=16)
    assert all((x["input_ids"] == y["input_ids"]).all() for x, y in zip(examples, again))

    batches = classification_batches({"en": source, "fr": target}, {"en": 0, "fr": 1}, IDS, batch_size=8)
    batch = batches[0]
    assert batch["labels"].shape == (8,) and count_targets(batch) == 8
    assert batch["input_ids"].shape[0] == 8 and len(batches) == 200 // 8


# --- corpus -------------------------------------------------------------------------------------
def _write_tsv(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("page\tid\ten\tfr\tde\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def test_read_parallel_corpus(tmp_path):
    path = tmp_path / "c.tsv.gz"
    rows = [(f"p{i % 7}", f"id{i}", f"en {i}", f"fr {i}" if i != 3 else "", f"de {i}") for i in range(40)]
    _write_tsv(path, rows)
    corpus = read_parallel_corpus(path)
    assert corpus.languages == ["en", "fr", "de"] and len(corpus) == 39  # row 3 lacks French
    assert corpus.texts["fr"][3] == "fr 4" and corpus.ids[3] == "id4"
    subset = read_parallel_corpus(path, ["de", "en"], limit=5)
    assert subset.languages == ["de", "en"] and subset.texts["de"][3] == "de 3" and len(subset) == 5
    train, held = corpus.split(0.3, seed=0)
    assert len(train) + len(held) == 39 and len(held) > 0
    assert not set(train.pages) & set(held.pages)
    with pytest.raises(ValueError, match=r"no column for \['ro'\]"):
        read_parallel_corpus(path, ["en", "ro"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\ten\nx\ty\tz\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header must be"):
        read_parallel_corpus(bad)


def test_bundled_corpus_and_tokenizer():
    from xlm.tokenizer import XLMTokenizer

    path = default_corpus_path()
    corpus = read_parallel_corpus(path, limit=50)
    assert set(corpus.languages) >= {"en", "fr", "de"} and len(corpus) == 50
    assert os.path.isfile(os.path.join(os.path.dirname(path), "LICENSE-MPL-2.0"))
    tokenizer = XLMTokenizer.from_pretrained(os.path.join(os.path.dirname(path), "..", "test_tokenizer"))
    encoded = encode_sentences(tokenizer, corpus.texts["fr"][:10], "fr")
    for text, ids in zip(corpus.texts["fr"][:10], encoded):
        assert list(ids) == tokenizer.encode(text, add_special_tokens=False, lang="fr")
    ids = TokenIds(vocab_size=len(tokenizer), mask=tokenizer.mask_token_id)
    assert set(tokenizer.all_special_ids) <= set(ids.special_ids)
    batches = pretraining_batches(
        {lang: encode_sentences(tokenizer, corpus.texts[lang], lang) for lang in ("en", "fr")},
        "mlm+tlm", {"en": 0, "fr": 1}, ids, batch_size=2, bptt=64,
    )
    assert {batches.group_of(s).split(":")[0] for s in range(len(batches))} == {"mlm", "tlm"}


# --- helpers shared by the loops ----------------------------------------------------------------
def test_shard_batch_count_targets_and_batches_from():
    batch = {"input_ids": np.arange(10).reshape(5, 2), "labels": np.array([[1, -100], [2, 3], [-100, -100], [4, 5], [6, -100]])}
    shards = [shard_batch(batch, i, 2) for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([s["input_ids"] for s in shards]), batch["input_ids"])
    assert [len(s["labels"]) for s in shards] == [2, 3]
    assert count_targets(batch) == 6 and sum(count_targets(s) for s in shards) == 6
    with pytest.raises(ValueError, match="cannot be split into 6"):
        shard_batch(batch, 0, 6)

    items = [{"k": np.array([i])} for i in range(4)]
    assert [int(b["k"][0]) for b, _ in zip(batches_from(items, 3), range(3))] == [3, 0, 1]  # sequences cycle
    assert [int(b["k"][0]) for b in batches_from(iter(items), 2)] == [2, 3]  # iterators skip
    with pytest.raises(ValueError, match="ran out after 4"):
        next(batches_from(iter(items), 6))


def test_unigram_baseline():
    encoded = {"en": [np.array([20, 21, 21, 1]), np.array([21, 22])], "fr": [np.array([2, 2, 2, 2, 30])]}
    batches = [{"labels": np.array([[21, -100, 20], [21, 21, -100]])}, {"labels": np.array([[-100, 30]])}]
    baseline = unigram_baseline(encoded, batches, IDS)  # specials (1, 2) never count as the answer
    assert baseline == {"accuracy": 3 / 5, "token": 21, "targets": 5}


def test_warmup_linear_decay():
    factors = [warmup_linear_decay(s, 4, 12) for s in range(13)]
    np.testing.assert_allclose(factors[:4], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(factors[4:], [1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0])
    assert warmup_linear_decay(0, 0, 10) == 1.0 and warmup_linear_decay(20, 0, 10) == 0.0
