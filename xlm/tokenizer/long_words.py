"""BPE of long words in O(n log n): the same pieces as the rank-by-rank loop of `XLMTokenizer.bpe`
(and transformers'), which rescans the whole word after every merge and so takes quadratic time on
a word of thousands of characters (a URL, base64, a line without spaces)."""

from __future__ import annotations

import heapq
from collections.abc import Mapping

#: words longer than this go through `merge_symbols`; shorter ones are faster with the plain loop
LONG_WORD = 64


def merge_symbols(symbols: list[str], ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges to `symbols` as the reference loop does: repeatedly take the lowest-ranked
    adjacent pair present and merge every occurrence of it, left to right, without overlaps.

    The symbols form a linked list; a heap holds (rank, position) of every adjacent pair, stale
    entries being skipped when popped. All occurrences of one rank are merged before the pairs that
    these merges create are queued, so that a new pair of a lower rank waits, as in the loop.
    """
    n = len(symbols)
    if n < 2:
        return list(symbols)
    word = list(symbols)
    right = list(range(1, n)) + [-1]
    left = list(range(-1, n - 1))
    heap = [(rank, i) for i in range(n - 1) if (rank := ranks.get((word[i], word[i + 1]))) is not None]
    heapq.heapify(heap)
    while heap:
        rank = heap[0][0]
        positions = []
        while heap and heap[0][0] == rank:
            positions.append(heapq.heappop(heap)[1])
        created = []
        for i in sorted(set(positions)):  # left to right, as the loop merges
            j = right[i]
            if word[i] is None or j < 0 or ranks.get((word[i], word[j])) != rank:
                continue  # merged away, or no longer this pair
            word[i] += word[j]
            word[j] = None
            right[i] = right[j]
            if right[j] >= 0:
                left[right[j]] = i
            if left[i] >= 0:
                created.append(left[i])
            if right[i] >= 0:
                created.append(i)
        for i in created:
            j = right[i]
            if word[i] is not None and j >= 0:
                new_rank = ranks.get((word[i], word[j]))
                if new_rank is not None:
                    heapq.heappush(heap, (new_rank, i))
    return [symbol for symbol in word if symbol is not None]
