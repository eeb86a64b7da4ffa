"""xlm.bpe: the incremental learner against a naive one, determinism, files usable by both tokenizers."""

from __future__ import annotations

import gzip
import os
import random
from collections import Counter

import pytest

from xlm.bpe import count_words, learn_bpe, read_bpe_files, write_bpe_files
from xlm.tokenizer import DEFAULT_SPECIAL_TOKENS, XLMTokenizer, pre_tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE = os.path.join(ROOT, "xlm", "data", "lohelp", "en-fr-de-slice.tsv.gz")
VOCAB_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")


def read_slice() -> tuple[list[str], list[list[str]]]:
    with gzip.open(SLICE, "rt", encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    return rows[0], rows[1:]


HEADER, ROWS = read_slice()


def column(lang: str, count: int | None = None) -> list[str]:
    index = HEADER.index(lang)
    return [row[index] for row in ROWS[:count]]


def naive_bpe(counts: dict[str, int], num_merges: int, min_frequency: int = 2) -> list[tuple[str, str]]:
    """Recount every pair after every merge: slow, obviously right."""
    words = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in counts}
    merges = []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for word, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        for word, symbols in words.items():
            out, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[word] = tuple(out)
    return merges


def test_textbook_example():
    counts = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    vocab, merges = learn_bpe(counts, 10)
    # es/st</w> tie at 9 (smaller pair first), then es+t</w> 9, lo 7, then a three-way tie at 6
    assert merges[:4] == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w")]
    assert merges == naive_bpe(counts, 10)
    assert list(vocab)[: len(DEFAULT_SPECIAL_TOKENS)] == list(DEFAULT_SPECIAL_TOKENS)
    assert [vocab[t] for t in DEFAULT_SPECIAL_TOKENS] == list(range(14))
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_incremental_counts_equal_naive_on_corpus():
    counts = count_words(column("fr", 250), lang="fr") + count_words(column("en", 250), lang="en")
    _, merges = learn_bpe(counts, 200)
    assert len(merges) == 200
    assert merges == naive_bpe(dict(counts), 200)


def test_repeated_symbols_and_min_frequency():
    counts = {"aaaa": 3, "aaa": 2, "aa": 1, "banana": 4, "xyz": 1}
    _, merges = learn_bpe(counts, 50)
    assert merges == naive_bpe(counts, 50)
    _, strict = learn_bpe(counts, 50, min_frequency=5)
    assert strict == naive_bpe(counts, 50, min_frequency=5)
    assert len(strict) < len(merges)


def test_deterministic_and_order_independent():
    counts = count_words(column("de", 300), lang="de")
    items = list(counts.items())
    random.Random(0).shuffle(items)
    first = learn_bpe(counts, 200)
    assert learn_bpe(dict(items), 200) == first
    assert learn_bpe(counts, 200) == first


def test_sentences_equal_counts():
    sentences = column("en", 200)
    assert learn_bpe(sentences, 100, lang="en") == learn_bpe(count_words(sentences, "en"), 100)


def test_pre_tokenize_is_the_tokenizers_view():
    tokenizer = XLMTokenizer.from_pretrained(VOCAB_DIR)
    for sentence in column("fr", 50):
        words = pre_tokenize(sentence, "fr")
        pieces = tokenizer.tokenize(sentence, lang="fr")
        assert "".join(words) == "".join(pieces).replace("</w>", "")
        assert sum(p.endswith("</w>") for p in pieces) == len(words)


def test_learned_files_work_in_both_tokenizers(tmp_path):
    transformers = pytest.importorskip("transformers")
    sentences = column("de", 500)
    vocab, merges = learn_bpe(sentences, 500, lang="de")
    vocab_path, merges_path = write_bpe_files(vocab, merges, tmp_path)
    assert read_bpe_files(tmp_path) == (vocab, merges)
    ours = XLMTokenizer(vocab_path, merges_path)
    ref = transformers.XLMTokenizer(vocab_path, merges_path)
    for sentence in sentences[:100]:
        tokens = ours.tokenize(sentence, lang="de")
        assert ours.unk_token not in tokens  # every training word is covered
        assert ours.tokenize(sentence) == ref.tokenize(sentence)
        assert ours.encode(sentence) == ref.encode(sentence)


def test_bundled_vocabulary_is_reproducible():
    """xlm/data/test_tokenizer is what scripts/make_test_vocab.py learns from the bundled slice."""
    counts: Counter = Counter()
    for lang in ("de", "en", "fr"):
        counts += count_words(column(lang), lang=lang)
    vocab, merges = learn_bpe(counts, 4000)
    assert (vocab, merges) == read_bpe_files(VOCAB_DIR)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_merges"):
        learn_bpe({"a": 1}, -1)
    assert learn_bpe({}, 10) == ({t: i for i, t in enumerate(DEFAULT_SPECIAL_TOKENS)}, [])
