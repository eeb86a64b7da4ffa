"""Learn BPE merges for XLMTokenizer (subword-nmt / fastBPE style, `</w>` word ends)."""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Union

from .tokenizer import DEFAULT_SPECIAL_TOKENS, pre_tokenize
from .tokenizer.files import _atomic_write, _json_dumps

__all__ = ["count_words", "learn_bpe", "write_bpe_files", "read_bpe_files"]

END_OF_WORD = "</w>"


def count_words(
    sentences: Iterable[str], lang: str = "en", lowercase_and_strip_accents: bool = True
) -> Counter:
    """Word counts of `sentences` after XLMTokenizer's pre-tokenisation in language `lang`."""
    counts: Counter = Counter()
    for sentence in sentences:
        counts.update(pre_tokenize(sentence, lang, lowercase_and_strip_accents))
    return counts


def _symbols(word: str) -> tuple[str, ...]:
    return tuple(word[:-1]) + (word[-1] + END_OF_WORD,)


def learn_bpe(
    sentences_or_token_counts: Union[Iterable[str], Mapping[str, int]],
    num_merges: int,
    *,
    lang: str = "en",
    lowercase_and_strip_accents: bool = True,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn up to `num_merges` merges; returns (vocab token → id, merges best first).

    The input is either sentences (pre-tokenised like XLMTokenizer in language `lang`) or a
    mapping word → count of already pre-tokenised words. Each step merges the most frequent
    adjacent pair (ties: the smallest pair in string order), so the result is deterministic.
    Learning stops early when no pair occurs `min_frequency` times.

    The vocabulary holds `special_tokens` at ids 0.. (the original XLM dictionary order by
    default), then every symbol of the segmented training words by decreasing frequency, then
    the remaining single characters and merge results, so that every training word and every
    unseen word made of seen characters maps to known tokens.
    """
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    if isinstance(sentences_or_token_counts, Mapping):
        counts = {w: int(c) for w, c in sentences_or_token_counts.items() if w and int(c) > 0}
    else:
        counts = dict(count_words(sentences_or_token_counts, lang, lowercase_and_strip_accents))

    words_sorted = sorted(counts)  # fixed order for determinism
    words = [list(_symbols(w)) for w in words_sorted]
    freqs = [counts[w] for w in words_sorted]

    pair_counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, (symbols, freq) in enumerate(zip(words, freqs)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)

    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges and heap:
        negative, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative:  # stale entry; the current count was pushed separately
            continue
        if count < min_frequency:
            break
        merges.append(pair)
        first, second = pair
        joined = first + second
        changed: dict[tuple[str, str], int] = defaultdict(int)
        for index in sorted(where.pop(pair, ())):
            symbols, freq = words[index], freqs[index]
            for old in zip(symbols, symbols[1:]):
                changed[old] -= freq
            merged, i, end = [], 0, len(symbols) - 1
            while i <= end:
                if i < end and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(joined)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[index] = merged
            for new in zip(merged, merged[1:]):
                changed[new] += freq
                where[new].add(index)
        for other, delta in changed.items():
            if delta == 0:
                continue
            updated = pair_counts.get(other, 0) + delta
            if updated > 0:
                pair_counts[other] = updated
                heapq.heappush(heap, (-updated, other))
            else:
                pair_counts.pop(other, None)
                where.pop(other, None)
        pair_counts.pop(pair, None)

    return _build_vocab(words, freqs, merges, words_sorted, special_tokens), merges


def _build_vocab(
    words: list[list[str]],
    freqs: list[int],
    merges: list[tuple[str, str]],
    words_sorted: list[str],
    special_tokens: Iterable[str],
) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for token in special_tokens:
        if token not in vocab:
            vocab[token] = len(vocab)
    symbol_counts: Counter = Counter()
    for symbols, freq in zip(words, freqs):
        for symbol in symbols:
            symbol_counts[symbol] += freq
    for symbol, _ in sorted(symbol_counts.items(), key=lambda item: (-item[1], item[0])):
        vocab.setdefault(symbol, len(vocab))
    # Characters in both positions, and every merge result, so that BPE of unseen words
    # made of known characters never needs <unk>.
    chars = sorted({c for w in words_sorted for c in w})
    extra = [c for c in chars] + [c + END_OF_WORD for c in chars] + [a + b for a, b in merges]
    for token in extra:
        vocab.setdefault(token, len(vocab))
    return vocab


def write_bpe_files(
    vocab: Mapping[str, int], merges: Iterable[tuple[str, str]], directory: Union[str, os.PathLike]
) -> tuple[str, str]:
    """Write vocab.json and merges.txt (transformers' formats) into `directory`."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    _atomic_write(vocab_path, _json_dumps(dict(vocab)))
    _atomic_write(merges_path, "".join(f"{a} {b}\n" for a, b in merges))
    return vocab_path, merges_path


def read_bpe_files(directory: Union[str, os.PathLike]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Read what `write_bpe_files` wrote."""
    from .tokenizer import read_merges

    directory = os.fspath(directory)
    with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as handle:
        vocab = json.load(handle)
    return vocab, read_merges(os.path.join(directory, "merges.txt"))
