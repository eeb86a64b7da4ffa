"""Token ↔ word ↔ character look-ups of an encoded row (what transformers' fast tokenizers keep in
their Rust `Encoding`), and the `BatchEncoding` methods that use them: `word_ids()`,
`sequence_ids()`, `tokens()`, `token_to_chars()`, `char_to_token()` and the rest.

They exist when the tokenizer was called with `return_offsets_mapping=True` (or
`return_overflowing_tokens=True`); `xlm.tokenizer.offsets` builds them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional


class CharSpan(NamedTuple):
    """Character span [start, end) in the original text (as transformers' `CharSpan`)."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Token span [start, end) in an encoded row (as transformers' `TokenSpan`)."""

    start: int
    end: int


class TokenAlignment:
    """One encoded row: per token its string, its (start, end) characters in its own input text
    ((0, 0) for special and padding tokens), its word index and its sequence (0 text, 1 text_pair;
    None for special and padding tokens)."""

    __slots__ = ("tokens", "offsets", "word_ids", "sequence_ids")

    def __init__(
        self,
        tokens: list[str],
        offsets: list[tuple[int, int]],
        word_ids: list[Optional[int]],
        sequence_ids: list[Optional[int]],
    ) -> None:
        self.tokens = tokens
        self.offsets = offsets
        self.word_ids = word_ids
        self.sequence_ids = sequence_ids

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"TokenAlignment(tokens={self.tokens!r}, offsets={self.offsets!r}, word_ids={self.word_ids!r})"

    def pad(self, count: int, side: str, pad_token: str) -> None:
        """Add `count` padding tokens on `side` ("right" or "left")."""
        if count <= 0:
            return
        fills = ([pad_token] * count, [(0, 0)] * count, [None] * count, [None] * count)
        for name, fill in zip(self.__slots__, fills):
            value = getattr(self, name)
            setattr(self, name, value + fill if side == "right" else fill + value)

    def token_to_sequence(self, token: int) -> Optional[int]:
        return self.sequence_ids[token]

    def token_to_word(self, token: int) -> Optional[int]:
        return self.word_ids[token]

    def token_to_chars(self, token: int) -> Optional[CharSpan]:
        if self.sequence_ids[token] is None:
            return None
        return CharSpan(*self.offsets[token])

    def _in_sequence(self, sequence: int) -> list[bool]:
        """Which tokens belong to `sequence`; all of them when the row has no such sequence (as tokenizers)."""
        inside = [s == sequence for s in self.sequence_ids]
        return inside if any(inside) else [True] * len(inside)

    def word_to_tokens(self, word: int, sequence: int = 0) -> Optional[TokenSpan]:
        found = [i for i, (w, inside) in enumerate(zip(self.word_ids, self._in_sequence(sequence)))
                 if inside and w == word]
        return TokenSpan(found[0], found[-1] + 1) if found else None

    def word_to_chars(self, word: int, sequence: int = 0) -> Optional[CharSpan]:
        span = self.word_to_tokens(word, sequence)
        if span is None:
            return None
        return CharSpan(self.offsets[span.start][0], self.offsets[span.end - 1][1])

    def char_to_token(self, char: int, sequence: int = 0) -> Optional[int]:
        for i, ((start, end), inside) in enumerate(zip(self.offsets, self._in_sequence(sequence))):
            if inside and start <= char < end:
                return i
        return None

    def char_to_word(self, char: int, sequence: int = 0) -> Optional[int]:
        token = self.char_to_token(char, sequence)
        return None if token is None else self.word_ids[token]


class AlignmentMethods:
    """transformers' `BatchEncoding` look-ups, for a `BatchEncoding` that has `_encodings`.

    Each takes `(batch_index, index)` or just `(index)` for row 0, as transformers' do.
    """

    _encodings: Optional[list[TokenAlignment]] = None

    def _alignment(self, name: str, batch_index: int) -> TokenAlignment:
        if not self._encodings:
            raise ValueError(
                f"{name}() needs the tokenizer to be called with return_offsets_mapping=True (xlm computes "
                "the token alignment only then)"
            )
        if not -len(self._encodings) <= batch_index < len(self._encodings):
            raise IndexError(f"{name}(): batch index {batch_index} out of range for {len(self._encodings)} rows")
        return self._encodings[batch_index]

    def _split_index(self, name: str, batch_or_index: int, index: Optional[int]) -> tuple[TokenAlignment, int]:
        batch_index, index = (0, batch_or_index) if index is None else (batch_or_index, index)
        row = self._alignment(name, batch_index)
        return row, index

    def _token(self, name: str, batch_or_index: int, index: Optional[int]) -> tuple[TokenAlignment, int]:
        row, token = self._split_index(name, batch_or_index, index)
        if token < 0:
            token += len(row)
        if not 0 <= token < len(row):
            raise IndexError(f"{name}(): token index {token} out of range for a row of {len(row)} tokens")
        return row, token

    @property
    def is_fast(self) -> bool:
        """True when the token alignment is available (transformers: when a fast tokenizer made it)."""
        return bool(self._encodings)

    @property
    def encodings(self) -> Optional[list[TokenAlignment]]:
        """The per-row alignments (transformers: the Rust encodings), or None."""
        return self._encodings

    @property
    def n_sequences(self) -> Optional[int]:
        """1 for single texts, 2 for (text, text_pair), None without alignment."""
        if not self._encodings:
            return None
        return 2 if any(s == 1 for s in self._encodings[0].sequence_ids) else 1

    def tokens(self, batch_index: int = 0) -> list[str]:
        """Token strings of a row, special and padding tokens included."""
        return list(self._alignment("tokens", batch_index).tokens)

    def sequence_ids(self, batch_index: int = 0) -> list[Optional[int]]:
        """Per token 0 (text), 1 (text_pair) or None (special and padding tokens)."""
        return list(self._alignment("sequence_ids", batch_index).sequence_ids)

    def word_ids(self, batch_index: int = 0) -> list[Optional[int]]:
        """Per token the index of its word in its sequence (None for special and padding tokens).

        A word is one Moses word (a BPE piece after a `</w>` starts a new one) or one added token
        found in the text; with `is_split_into_words=True` it is the index of the input word.
        """
        return list(self._alignment("word_ids", batch_index).word_ids)

    def words(self, batch_index: int = 0) -> list[Optional[int]]:
        """Same as `word_ids` (transformers' older name)."""
        return self.word_ids(batch_index)

    def token_to_sequence(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        row, token = self._token("token_to_sequence", batch_or_token_index, token_index)
        return row.token_to_sequence(token)

    def token_to_word(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        row, token = self._token("token_to_word", batch_or_token_index, token_index)
        return row.token_to_word(token)

    def token_to_chars(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[CharSpan]:
        """Characters of a token in its input text; None for special and padding tokens."""
        row, token = self._token("token_to_chars", batch_or_token_index, token_index)
        return row.token_to_chars(token)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[TokenSpan]:
        row, word = self._split_index("word_to_tokens", batch_or_word_index, word_index)
        return row.word_to_tokens(word, sequence_index)

    def word_to_chars(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[CharSpan]:
        row, word = self._split_index("word_to_chars", batch_or_word_index, word_index)
        return row.word_to_chars(word, sequence_index)

    def char_to_token(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        """The token whose span holds character `char_index` of sequence `sequence_index`, or None."""
        row, char = self._split_index("char_to_token", batch_or_char_index, char_index)
        return row.char_to_token(char, sequence_index)

    def char_to_word(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        row, char = self._split_index("char_to_word", batch_or_char_index, char_index)
        return row.char_to_word(char, sequence_index)
