"""Character offsets of XLM tokens in the original text, and the encoding paths that need them:
`return_offsets_mapping=True` and `return_overflowing_tokens=True` (windows with `stride`).

transformers' XLM tokenizer is a slow (Python) tokenizer and gives no offsets. Ours follows each
token back through the preprocessing: lowercasing (a character may become several), added tokens
split off the raw text, unicode punctuation replacement, Moses punctuation normalisation,
non-printing characters, Moses tokenisation, accent stripping (NFD) and BPE.

How: each character of the (lowercased) text is mapped to the characters it becomes in the token
text (its "form": punctuation replaced, Moses' one-character substitutions, accents stripped; a
space when it disappears). The tokens' characters are then matched left to right against those
forms, a whole word at a time when it matches directly (nearly always), else character by
character; where the Moses normaliser rewrote several characters (`''` → `"`, `"hi",` → `"hi,"`,
`1\\u00a0000` → `1.000`, `DOTMULTI`) a small bounded search re-synchronises, and the characters
in between form one group. Linear in the text length.

What a span holds (`offset_mapping`, one (start, end) per token, into the text as given):
- Special tokens added around the sequences and padding: (0, 0).
- A BPE piece: the characters it came from, `</w>` excluded; cut out of the text and given the
  tokenizer's normalisation, they give the piece's text.
- Allowances, where no one-to-one span exists: (1) a character that becomes several characters of
  the token text ("…" → "...", Hangul syllables decomposed by NFD) belongs whole to the first
  token that uses it; later tokens made of it get an empty span at its end. (2) A group rewritten
  by the Moses normaliser as a whole (several characters to one, or reordered) belongs to the first
  token of the group; later tokens of the group get an empty span at its end. (3) A character the
  normaliser inserts ("." in "1\\u00a0000" → "1.000") has no span of its own; a token made only of
  inserted characters gets an empty span where it stands.
- Spans are within [0, len(text)], non-decreasing and non-overlapping. With
  `is_split_into_words=True` they are relative to each word (as transformers' fast tokenizers).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional

from xlm.tokenizer.alignment import TokenAlignment
from xlm.tokenizer.encoding import BatchEncoding
from xlm.tokenizer.normalize import _strip_accents, replace_unicode_punct, romanian_preprocessing

_DELETED = " "  # form of a character that leaves no trace in the token text (token texts hold no spaces)

# The Moses normaliser's one-character substitutions (sacremoses MosesPunctNormalizer).
_MOSES_CHARS = {
    "«": '"', "»": '"', "„": '"', "“": '"', "”": '"',
    "‘": "'", "‚": "'", "’": "'", "´": "'", "`": "'",
    "–": "-", "—": "-",
}
# (token character, text form) pairs that also match: `''` and `´´` become one `"`.
_EQUIVALENT = frozenset({('"', "'")})
_SEARCH_WINDOW = 24  # how far (in characters, each side) re-synchronisation looks
_SOLID_MATCH = 3  # characters that must agree after a mismatch to re-synchronise there
_REORDERED = 6  # longest reordered run looked for
_CLOSE = 6  # within this many characters of a mismatch, 2 agreeing characters are enough
_NOT_DELETED = re.compile("[^ ]")


class _Forms(dict):
    """Code point → the characters it becomes in the token text, for `str.translate`."""

    def __init__(self, strip_accents: bool, romanian: bool) -> None:
        super().__init__()
        self.strip_accents = strip_accents
        self.romanian = romanian

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char.isspace() or unicodedata.category(char)[0] == "C":
            form = _DELETED
        else:
            form = "".join(_MOSES_CHARS.get(c, c) for c in replace_unicode_punct(char))
            if self.romanian:
                form = romanian_preprocessing(form)
            if self.strip_accents:
                form = _strip_accents(form)
            form = form.replace(" ", "") or _DELETED
        self[code] = form
        return form


_FORMS: dict[tuple[bool, bool], _Forms] = {}


def _forms(strip_accents: bool, romanian: bool) -> _Forms:
    key = (strip_accents, romanian)
    forms = _FORMS.get(key)
    if forms is None:
        forms = _FORMS[key] = _Forms(strip_accents, romanian)
    return forms


# --- alignment of token text to text ------------------------------------------------------------


def _solid(target: str, i: int, norm: str, j: int, count: int) -> bool:
    """`count` characters of `target` from i equal those of `norm` from j (deleted ones skipped);
    when they are the target's last, the rest of `norm` must be deleted characters only."""
    n = len(norm)
    for k in range(count):
        while j < n and norm[j] == _DELETED:
            j += 1
        if j >= n:
            return False
        t, c = target[i + k], norm[j]
        if t != c and (t, c) not in _EQUIVALENT:
            return False
        j += 1
    if i + count == len(target):
        return _NOT_DELETED.search(norm, j) is None
    return True


def _permuted(target: str, i: int, norm: str, j: int) -> Optional[tuple[int, int]]:
    """(target characters, text characters) of a short reordered run at (i, j): the Moses normaliser
    moves quotes past punctuation (`".` → `."`, `,"` → `",`, `..."` → `"...`)."""
    chars, ends = [], []
    k, n = j, len(norm)
    while k < n and len(chars) < _REORDERED:
        if norm[k] != _DELETED:
            chars.append(norm[k])
            ends.append(k + 1)
        k += 1
    for m in range(2, min(len(chars), len(target) - i) + 1):
        if sorted(target[i : i + m]) == sorted(chars[:m]) and _solid(target, i + m, norm, ends[m - 1],
                                                                      min(1, len(target) - i - m)):
            return m, ends[m - 1] - j
    return None


def _resync(target: str, i: int, norm: str, j: int) -> tuple[int, int]:
    """(target characters, text characters) to consume as one group after a mismatch at (i, j)."""
    permuted = _permuted(target, i, norm, j)
    if permuted is not None:
        return permuted
    rest_t, rest_n = len(target) - i, len(norm) - j
    for d in range(1, 2 * _SEARCH_WINDOW + 1):
        # `_SOLID_MATCH` characters must agree again; 2 are enough close by, where rewrites follow
        # each other (`"a", "b".` → `"a," "b."`).
        for solid in (_SOLID_MATCH, 2) if d <= _CLOSE else (_SOLID_MATCH,):
            for di in sorted(range(d + 1), key=lambda x: abs(2 * x - d)):  # balanced steps first
                dj = d - di
                if di > rest_t or dj > rest_n or di > _SEARCH_WINDOW or dj > _SEARCH_WINDOW:
                    continue
                if di == rest_t:  # the target would end inside the group: only if nothing agrees again
                    continue
                if j + dj < len(norm) and norm[j + dj] == _DELETED:
                    continue
                if _solid(target, i + di, norm, j + dj, min(solid, rest_t - di)):
                    return di, dj
    if rest_t <= _SEARCH_WINDOW:  # the rest of the target and of the text, as one group
        return rest_t, rest_n
    return (1, 1) if rest_n else (rest_t, 0)


def _token_spans(norm: str, words: list[str], lengths: list[list[int]]) -> list[Optional[tuple[int, int]]]:
    """Span in `norm` of each token (None when it has none); `words` are the words' texts (their
    concatenation: the target), `lengths` the characters of each of a word's tokens."""
    spans: list[Optional[tuple[int, int]]] = []
    n = len(norm)
    target = ""
    i = j = word_start = 0
    region: Optional[int] = None  # first word of the words being matched character by character
    segments: list[tuple[int, int, int, int, bool]] = []

    def add(t0: int, t1: int, n0: int, n1: int, exact: bool) -> None:
        if exact and segments:
            p = segments[-1]
            if p[4] and p[1] == t0 and p[3] == n0:
                segments[-1] = (p[0], t1, p[2], n1, True)
                return
        segments.append((t0, t1, n0, n1, exact))

    for w, word in enumerate(words):
        word_end = word_start + len(word)
        if i == word_start:
            if region is not None:
                spans.extend(_spans(segments, [x for k in range(region, w) for x in lengths[k]], region_start))
                region, segments = None, []
            found = _NOT_DELETED.search(norm, j)
            j = found.start() if found else n
            if norm.startswith(word, j):
                for length in lengths[w]:
                    spans.append((j, j + length))
                    j += length
                i = word_start = word_end
                continue
            region, region_start = w, word_start
            if not target:
                target = "".join(words)
        while i < word_end:
            if j < n and norm[j] == _DELETED:
                j += 1
                continue
            t = target[i]
            if j < n and (norm[j] == t or (t, norm[j]) in _EQUIVALENT):
                add(i, i + 1, j, j + 1, True)
                i, j = i + 1, j + 1
                continue
            di, dj = _resync(target, i, norm, j)
            if di:
                add(i, i + di, j, j + dj, False)
            i, j = i + di, j + dj
        word_start = word_end
    if region is not None:
        spans.extend(_spans(segments, [x for k in range(region, len(words)) for x in lengths[k]], region_start))
    return spans


def _spans(
    segments: list[tuple[int, int, int, int, bool]], lengths: list[int], start: int
) -> list[Optional[tuple[int, int]]]:
    """Norm span of each token: consecutive target slices of `lengths` from `start`, matched by
    `segments` (target start, target end, norm start, norm end, exact: one to one, else a group)."""
    out: list[Optional[tuple[int, int]]] = []
    s, count = 0, len(segments)
    for length in lengths:
        end = start + length
        lo = hi = None
        while s < count and segments[s][1] <= start:
            s += 1
        k = s
        while k < count and segments[k][0] < end:
            t0, t1, n0, n1, exact = segments[k]
            if exact:
                a, b = n0 + max(start, t0) - t0, n0 + min(end, t1) - t0
            else:
                a, b = n0, n1
            if a < b:
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
            k += 1
        out.append(None if lo is None else (lo, hi))
        start = end
    return out


# --- one text to tokens with offsets -------------------------------------------------------------


class _Sequence:
    """One input (text, or words) encoded: ids, tokens, character offsets and word indices."""

    __slots__ = ("ids", "tokens", "offsets", "word_ids")

    def __init__(self, ids: list[int], tokens: list[str], offsets: Optional[list[tuple[int, int]]],
                 word_ids: Optional[list[int]]) -> None:
        self.ids, self.tokens, self.offsets, self.word_ids = ids, tokens, offsets, word_ids

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int) -> "_Sequence":
        return _Sequence(
            self.ids[start:stop],
            self.tokens[start:stop],
            None if self.offsets is None else self.offsets[start:stop],
            None if self.word_ids is None else self.word_ids[start:stop],
        )


def _lowered_to_original(text: str, lowered: str) -> list[int]:
    """Index in `text` of each character of `lowered` (lowering may turn one character into several;
    protected tokens are left as they are)."""
    out: list[int] = []
    j = 0
    for i, char in enumerate(text):
        low = char.lower()
        if lowered.startswith(low, j):
            out.extend([i] * len(low))
            j += len(low)
        else:
            out.append(i)
            j += 1
    return out


def _word_table(tokenizer: Any, strip: bool) -> dict[str, tuple]:
    """The tokenizer's cache of `_word_entry` (emptied when its vocabulary changes)."""
    cache = tokenizer.__dict__.get("_offset_words")
    if cache is None or cache[0] is not tokenizer._word_tokens:  # new, or `_rebuild` ran
        cache = tokenizer.__dict__["_offset_words"] = (tokenizer._word_tokens, {}, {})
    return cache[1] if strip else cache[2]


def _word_entry(tokenizer: Any, word: str, strip: bool, table: dict[str, tuple]) -> tuple:
    """(tokens as `convert_ids_to_tokens` gives them, ids, characters of each BPE piece, the word's
    token text) of a word, cached in `table`."""
    entry = table.get(word)
    if entry is None:
        tokens = tokenizer._word_to_tokens(word, strip)
        get, unk = tokenizer._token_to_id.get, tokenizer._unk_id
        lengths = [len(t) for t in tokens]
        if lengths:
            lengths[-1] -= 4  # "</w>"
        ids = [get(t, unk) for t in tokens]
        shown = [t if t in tokenizer._token_to_id else tokenizer.unk_token for t in tokens]  # as transformers
        entry = (shown, ids, lengths, "".join(tokens)[:-4])
        if len(table) > 1_000_000:  # bound memory on endless streams of new words
            table.clear()
        table[word] = entry
    return entry


def _piece(tokenizer: Any, piece: str, base: int, lang: str, out: _Sequence, spans: list, word: int) -> int:
    """Append the tokens of a text piece without added tokens (starting at `base` in the lowered
    text) to `out`, their lowered-text spans to `spans`; returns the next word index."""
    words, strip = tokenizer._words(piece, lang)
    final_words, lengths = [], []
    tokens, ids, word_ids = out.tokens, out.ids, out.word_ids
    table = _word_table(tokenizer, strip)
    for text_word in words:
        entry = table.get(text_word) or _word_entry(tokenizer, text_word, strip, table)
        if not entry[0]:
            continue
        tokens += entry[0]
        ids += entry[1]
        word_ids += [word] * len(entry[0])
        word += 1
        lengths.append(entry[2])
        final_words.append(entry[3])
    if not final_words:
        return word
    forms = _forms(tokenizer.do_lowercase_and_remove_accent, lang == "ro")
    norm = piece.translate(forms)
    if len(norm) == len(piece):
        spans += [None if s is None else (base + s[0], base + s[1]) for s in _token_spans(norm, final_words, lengths)]
        return word
    source: list[int] = []  # some character became several: index in `piece` of each of `norm`
    for index, char in enumerate(piece):
        source += [index] * len(forms[ord(char)])
    for span in _token_spans(norm, final_words, lengths):
        spans.append(None if span is None else (base + source[span[0]], base + source[span[1] - 1] + 1))
    return word


def encode_text(tokenizer: Any, text: str, lang: str) -> _Sequence:
    """Ids (the same as the tokenizer's without offsets), tokens, offsets into `text` and word
    indices of one text, under the rules of `lang`."""
    lowered = tokenizer._lower(text) if tokenizer.do_lowercase_and_remove_accent else text
    out = _Sequence([], [], [], [])
    spans: list[Optional[tuple[int, int]]] = []
    word = position = 0
    for piece, added_id in tokenizer._split_added(lowered):
        start = lowered.find(piece, position)  # pieces are in order; only whitespace is dropped
        position = start + len(piece)
        if added_id is not None:
            out.ids.append(added_id)
            out.tokens.append(piece)
            out.word_ids.append(word)
            spans.append((start, position))
            word += 1
        else:
            word = _piece(tokenizer, piece, start, lang, out, spans, word)
    to_original = None if len(lowered) == len(text) else _lowered_to_original(text, lowered)
    offsets = []
    previous_end = 0
    for span in spans:
        if span is None:
            start = end = previous_end
        elif to_original is None:
            start, end = span
        else:
            start, end = to_original[span[0]], to_original[span[1] - 1] + 1
        if start < previous_end:  # allowances (1) and (2): the first token keeps the shared characters
            start = previous_end
            end = max(end, start)
        offsets.append((start, end))
        previous_end = end
    out.offsets = offsets
    return out


def _sequence(tokenizer: Any, given: Any, lang: str, is_split_into_words: bool, offsets: bool) -> _Sequence:
    """An input as `_get_input_ids` takes it, encoded with offsets when it is text."""
    if isinstance(given, str):
        return encode_text(tokenizer, given, lang)
    if isinstance(given, (list, tuple)) and given and isinstance(given[0], str) and is_split_into_words:
        out = _Sequence([], [], [], [])
        for index, word in enumerate(given):
            encoded = encode_text(tokenizer, word, lang)
            out.ids += encoded.ids
            out.tokens += encoded.tokens
            out.offsets += encoded.offsets
            out.word_ids += [index] * len(encoded)
        return out
    if offsets:
        raise ValueError(
            "return_offsets_mapping needs text: a string, or a list of words with is_split_into_words=True; "
            f"got {type(given).__name__} of tokens or ids"
        )
    ids = tokenizer._get_input_ids(given, lang, is_split_into_words)
    return _Sequence(ids, tokenizer.convert_ids_to_tokens(ids), None, None)


# --- truncation windows --------------------------------------------------------------------------


def _ranges(length: int, max_len: int, stride: int, side: str) -> list[tuple[int, int]]:
    """Windows of at most `max_len` tokens, consecutive ones sharing `stride` tokens; the kept
    window first (tokenizers' `Encoding.truncate`)."""
    if max_len >= length:
        return [(0, length)]
    if max_len == 0:
        return [(0, 0), (0, length)]
    if stride >= max_len:
        raise ValueError(
            f"stride ({stride}) must be smaller than the tokens left for the truncated sequence ({max_len}; "
            "max_length less the special tokens and the other sequence)"
        )
    step = max_len - stride
    out: list[tuple[int, int]] = []
    if side == "right":
        for start in range(0, length, step):
            stop = min(start + max_len, length)
            out.append((start, stop))
            if stop == length:
                break
    else:
        for last in range(length - 1, -1, -step):
            stop = last + 1
            start = max(stop - max_len, 0)
            out.append((start, stop))
            if start == 0:
                break
    return out


def _overflow_windows(
    tokenizer: Any, a: _Sequence, b: Optional[_Sequence], add_special_tokens: bool, truncation: str,
    max_length: Optional[int], stride: int,
) -> list[tuple[_Sequence, Optional[_Sequence]]]:
    """Every window of (a, b), as transformers' fast tokenizers return with return_overflowing_tokens."""
    if truncation == "do_not_truncate" or max_length is None:
        return [(a, b)]
    limit = max_length - (tokenizer.num_special_tokens_to_add(b is not None) if add_special_tokens else 0)
    if limit < 0:
        raise ValueError(f"max_length={max_length} leaves no room for the special tokens")
    len_a, len_b = len(a), (0 if b is None else len(b))
    to_remove = len_a + len_b - limit
    if to_remove <= 0:
        return [(a, b)]
    side = tokenizer.truncation_side
    keep_a, keep_b = len_a, len_b
    if truncation == "longest_first":
        if b is None:
            keep_a = limit
        else:  # tokenizers' rule: the shorter keeps what it can, at most half when both are too long
            n1, n2, swap = len_a, len_b, len_a > len_b
            if swap:
                n1, n2 = n2, n1
            n2 = n1 if n1 > limit else max(n1, limit - n1)
            if n1 + n2 > limit:
                n1 = limit // 2
                n2 = n1 + limit % 2
            keep_a, keep_b = (n2, n1) if swap else (n1, n2)
    else:
        if truncation == "only_second" and b is None:
            raise ValueError("truncation='only_second' needs a text_pair")
        target = len_a if truncation == "only_first" else len_b
        if target <= to_remove:
            raise ValueError(
                f"truncation={truncation!r}: the sequence to truncate has {target} tokens, too few to remove "
                f"{to_remove} and fit max_length={max_length}"
            )
        if truncation == "only_first":
            keep_a = len_a - to_remove
        else:
            keep_b = len_b - to_remove
    a_windows = [a.slice(*r) for r in _ranges(len_a, keep_a, stride, side)]
    if b is None:
        return [(w, None) for w in a_windows]
    b_windows = [b.slice(*r) for r in _ranges(len_b, keep_b, stride, side)]
    windows = [(a_windows[0], b_windows[0])]
    for a_window in a_windows[1:]:  # tokenizers' Encoding.merge_with order
        windows.append((a_window, b_windows[0]))
        windows.extend((a_window, b_window) for b_window in b_windows[1:])
    windows.extend((a_windows[0], b_window) for b_window in b_windows[1:])
    return windows


def _truncated(
    tokenizer: Any, a: _Sequence, b: Optional[_Sequence], add_special_tokens: bool, truncation: str,
    max_length: Optional[int],
) -> tuple[_Sequence, Optional[_Sequence]]:
    """(a, b) truncated exactly as without offsets (transformers' slow-tokenizer rules)."""
    total = len(a) + (0 if b is None else len(b))
    if add_special_tokens:
        total += tokenizer.num_special_tokens_to_add(b is not None)
    if truncation == "do_not_truncate" or not max_length or total <= max_length:
        return a, b
    kept_a, kept_b = tokenizer._truncate(
        list(range(len(a))), None if b is None else list(range(len(b))), total - max_length, truncation
    )

    def cut(sequence: _Sequence, kept: list[int]) -> _Sequence:
        return sequence.slice(kept[0], kept[-1] + 1) if kept else sequence.slice(0, 0)

    return cut(a, kept_a), None if b is None else cut(b, kept_b)


def _row_alignment(tokenizer: Any, a: _Sequence, b: Optional[_Sequence], add_special_tokens: bool) -> TokenAlignment:
    """The alignment of `<s> A </s> B </s>` (or `A B` without special tokens)."""
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    words: list[Optional[int]] = []
    sequences: list[Optional[int]] = []

    def special(token: str) -> None:
        tokens.append(token)
        offsets.append((0, 0))
        words.append(None)
        sequences.append(None)

    if add_special_tokens:
        special(tokenizer.bos_token)
    for index, sequence in enumerate([a] if b is None else [a, b]):
        tokens.extend(sequence.tokens)
        offsets.extend(sequence.offsets if sequence.offsets is not None else [(0, 0)] * len(sequence))
        words.extend(sequence.word_ids if sequence.word_ids is not None else [None] * len(sequence))
        sequences.extend([index] * len(sequence))
        if add_special_tokens:
            special(tokenizer.sep_token)
    return TokenAlignment(tokens, offsets, words, sequences)


# --- the encoding path ---------------------------------------------------------------------------

_KEY_ORDER = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping", "length",
              "overflow_to_sample_mapping", "langs")


def encode_examples_aligned(
    tokenizer: Any,
    examples: list[tuple[Any, Any]],
    batched: bool,
    *,
    add_special_tokens: bool = True,
    padding: Any = False,
    truncation: Any = None,
    max_length: Optional[int] = None,
    stride: int = 0,
    is_split_into_words: bool = False,
    pad_to_multiple_of: Optional[int] = None,
    padding_side: Optional[str] = None,
    return_tensors: Optional[str] = None,
    return_token_type_ids: Optional[bool] = None,
    return_attention_mask: Optional[bool] = None,
    return_overflowing_tokens: bool = False,
    return_special_tokens_mask: bool = False,
    return_offsets_mapping: bool = False,
    return_length: bool = False,
    verbose: bool = True,
    lang: Any = None,
    return_langs: Optional[bool] = None,
) -> BatchEncoding:
    """`XLMTokenizer._encode_examples` with `offset_mapping` and / or overflowing windows, laid out
    as transformers' fast tokenizers do: with return_overflowing_tokens the rows are the windows
    (batched even for one text) and `overflow_to_sample_mapping` gives each row's example. The
    result has the token alignment (`word_ids()`, `sequence_ids()`, ...) for text inputs."""
    del verbose
    if not isinstance(stride, int) or stride < 0:
        raise ValueError(f"stride must be a non-negative int, got {stride!r}")
    if return_token_type_ids and not add_special_tokens:
        raise ValueError("return_token_type_ids=True with add_special_tokens=False is undefined; leave it None")
    if padding_side is not None and padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    padding, truncation, max_length = tokenizer._strategies(padding, truncation, max_length, pad_to_multiple_of)
    (lang_a, lang_b), lang_ids = tokenizer._langs_for(lang, return_langs)
    if return_token_type_ids is None:
        return_token_type_ids = True
    if return_attention_mask is None:
        return_attention_mask = True
    rows_batched = batched or return_overflowing_tokens

    rows: list[dict[str, Any]] = []
    alignments: list[TokenAlignment] = []
    sample_mapping: list[int] = []
    aligned = True
    for index, (first, second) in enumerate(examples):
        a = _sequence(tokenizer, first, lang_a, is_split_into_words, return_offsets_mapping)
        b = None if second is None else _sequence(tokenizer, second, lang_b, is_split_into_words,
                                                   return_offsets_mapping)
        aligned = aligned and a.offsets is not None and (b is None or b.offsets is not None)
        if return_overflowing_tokens:
            windows = _overflow_windows(tokenizer, a, b, add_special_tokens, truncation, max_length, stride)
        else:
            windows = [_truncated(tokenizer, a, b, add_special_tokens, truncation, max_length)]
        for wa, wb in windows:
            row = tokenizer._prepare(
                wa.ids, None if wb is None else wb.ids, add_special_tokens, "do_not_truncate", None,
                return_token_type_ids, return_special_tokens_mask, lang_ids, return_length and rows_batched,
            )
            alignment = _row_alignment(tokenizer, wa, wb, add_special_tokens)
            if return_offsets_mapping:
                row["offset_mapping"] = alignment.offsets
            rows.append(row)
            alignments.append(alignment)
            sample_mapping.append(index)

    keys = list(rows[0]) if rows else ["input_ids"]
    batch = {k: [r[k] for r in rows] for k in keys}
    side = padding_side or tokenizer.padding_side
    if padding != "do_not_pad" or return_attention_mask:
        batch = tokenizer._pad_batch(batch, padding, max_length, pad_to_multiple_of, side, return_attention_mask)
    for row_ids, alignment in zip(batch["input_ids"], alignments):
        alignment.pad(len(row_ids) - len(alignment), side, tokenizer.pad_token)
    if return_offsets_mapping:
        batch["offset_mapping"] = [alignment.offsets for alignment in alignments]
    if return_length and not rows_batched:
        batch["length"] = [len(r) for r in batch["input_ids"]]
    if return_overflowing_tokens:
        batch["overflow_to_sample_mapping"] = sample_mapping
    order = [k for k in _KEY_ORDER if k in batch]  # transformers' fast-tokenizer order, langs last
    batch = {k: batch[k] for k in order + [k for k in batch if k not in order]}
    if not rows_batched:
        batch = {k: v[0] for k, v in batch.items()}
    encoding = BatchEncoding(batch)
    if aligned:
        encoding._encodings = alignments
    return encoding.convert_to_tensors(return_tensors, prepend_batch_axis=not rows_batched)
