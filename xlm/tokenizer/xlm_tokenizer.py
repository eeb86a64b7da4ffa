"""XLM tokenizer: Moses pre-tokenisation per language, then BPE with `</w>` word ends.

Output (token strings and ids) is identical to Hugging Face transformers' `XLMTokenizer`
(4.57) when no `lang=` is given; with `lang=` the rules of that language apply, as in
transformers' internal `_tokenize(text, lang=...)`. It is faster: Moses regexes that cannot
match are skipped, and the per-word work (accent stripping, BPE, vocabulary look-up) is cached.

Deliberate differences from transformers, all documented where they happen:
- `merges.txt` without a final newline keeps its last merge (transformers drops it), and a
  leading `#version` line is a header, not a merge; a line that is not "a b" or fastBPE's
  "a b count" is a ValueError naming the file and line (transformers keeps its first fields).
- `lang=` is honoured by `tokenize`, `encode` and `__call__` (transformers ignores it), and an
  unknown language code raises ValueError.
- `id2lang` keys are ints after loading a saved tokenizer (transformers leaves them strings).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from xlm.tokenizer.encoding import AddedToken, BatchEncoding, _to_list
from xlm.tokenizer.files import (
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    VOCAB_FILES_NAMES,
    _atomic_write,
    _json_dumps,
    _read_vocab,
    read_json_object,
    read_merges,
)
from xlm.tokenizer.languages import _PIPELINES, _check_known_language, _pipeline
from xlm.tokenizer.long_words import LONG_WORD, merge_symbols
from xlm.tokenizer.moses import _import_sacremoses
from xlm.tokenizer.normalize import (
    _lower_each_char,
    _strip_accents,
    lowercase_and_remove_accent,
)
from xlm.tokenizer.original import TRANSFORMERS, _original_words, check_preprocessing
from xlm.tokenizer.padding import VERY_LARGE_INTEGER, PaddingMixin
from xlm.tokenizer.special_tokens import (
    DEFAULT_ADDITIONAL_SPECIAL_TOKENS,
    SPECIAL_TOKENS_ATTRIBUTES,
    SpecialTokensMixin,
    _token_content,
)

TextOrIds = Union[str, Sequence[str], Sequence[int]]


class XLMTokenizer(SpecialTokensMixin, PaddingMixin):
    """XLM's BPE tokenizer, a drop-in for transformers' `XLMTokenizer`.

    Pipeline: lowercase (when `do_lowercase_and_remove_accent`) → split off special tokens →
    per language: unicode punctuation → Moses punctuation normalisation → non-printing
    characters removed → Moses tokenizer (Romanian: WMT16 preprocessing; Chinese: rjieba;
    Thai: PyThaiNLP; Japanese: KyTea) → lowercase and strip accents → BPE with `</w>` ends.

    Args:
        vocab_file: `vocab.json`, token → id.
        merges_file: `merges.txt`, one merge "a b" per line, best first.
        unk_token, bos_token, sep_token, pad_token, cls_token, mask_token: special tokens
            (defaults as transformers: `<unk>`, `<s>`, `</s>`, `<pad>`, `</s>`, `<special1>`).
        additional_special_tokens: defaults to `<special0>` .. `<special9>`.
        lang2id, id2lang: language code ↔ language-embedding id of the model (either one is
            enough; the other is derived).
        do_lowercase_and_remove_accent: lowercase and strip accents (True for most XLM models).
        eos_token: None by default, as in transformers (so `eos_token_id` is None; `sep_token`
            is what ends a sequence).
        model_max_length: longest input the model takes (default: no limit).
        padding_side, truncation_side: "right" (default) or "left".
        clean_up_tokenization_spaces: default of `decode`'s option of the same name.
        preprocessing: "transformers" (default: transformers' order, ids identical to its
            XLMTokenizer) or "original_xlm": the original XLM scripts' order, as the models that
            `xlm-convert from-original` makes were trained (Moses sees the text's case and
            lowercasing comes after it, control characters become spaces, text is taken line by
            line; see `xlm.tokenizer.original`). Saved in tokenizer_config.json.

    Example:
        >>> tok = XLMTokenizer.from_pretrained("path/to/dir")  # doctest: +SKIP
        >>> batch = tok(["Hello world!", "Bonjour"], padding=True, return_tensors="np")  # doctest: +SKIP
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        merges_file: str,
        unk_token: str = "<unk>",
        bos_token: str = "<s>",
        sep_token: str = "</s>",
        pad_token: str = "<pad>",
        cls_token: str = "</s>",
        mask_token: str = "<special1>",
        additional_special_tokens: Optional[Sequence[str]] = DEFAULT_ADDITIONAL_SPECIAL_TOKENS,
        lang2id: Optional[Mapping[str, int]] = None,
        id2lang: Optional[Mapping[Union[int, str], str]] = None,
        do_lowercase_and_remove_accent: bool = True,
        *,
        eos_token: Optional[str] = None,
        model_max_length: int = VERY_LARGE_INTEGER,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        added_tokens_decoder: Optional[Mapping[Union[int, str], Any]] = None,
        preprocessing: str = TRANSFORMERS,
        **kwargs: Any,
    ) -> None:
        _import_sacremoses()
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        # === Files ===
        self.vocab_file = os.fspath(vocab_file)
        self.merges_file = os.fspath(merges_file)
        self.encoder: dict[str, int] = _read_vocab(self.vocab_file)
        self.decoder: dict[int, str] = {v: k for k, v in self.encoder.items()}
        self.merges: list[tuple[str, str]] = read_merges(self.merges_file)
        # Duplicated merges keep their last rank, as in transformers.
        self.bpe_ranks: dict[tuple[str, str], int] = {pair: i for i, pair in enumerate(self.merges)}

        # === Config ===
        self.unk_token = _token_content(unk_token)
        self.bos_token = _token_content(bos_token)
        self.eos_token = _token_content(eos_token)
        self.sep_token = _token_content(sep_token)
        self.pad_token = _token_content(pad_token)
        self.cls_token = _token_content(cls_token)
        self.mask_token = _token_content(mask_token)
        self.additional_special_tokens = list(_token_content(additional_special_tokens or []))
        self.do_lowercase_and_remove_accent = bool(do_lowercase_and_remove_accent)
        self.preprocessing = check_preprocessing(preprocessing)
        self.lang2id, self.id2lang = self._language_maps(lang2id, id2lang)
        self.model_max_length = int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.split_special_tokens = bool(split_special_tokens)
        self.pad_token_type_id = 0
        kwargs.pop("tokenizer_class", None)
        kwargs.pop("name_or_path", None)
        kwargs.pop("extra_special_tokens", None)
        self.init_kwargs = dict(kwargs)  # unknown options, written back by save_pretrained
        self.name_or_path = os.path.dirname(self.vocab_file)

        # === Added tokens (special tokens are found in the raw text before Moses) ===
        self._added: dict[int, AddedToken] = {}
        for index, token in (added_tokens_decoder or {}).items():
            if isinstance(token, dict):
                token = AddedToken(**{k: v for k, v in token.items() if k in AddedToken.__dataclass_fields__})
            elif isinstance(token, str):
                token = AddedToken(token)
            self._added[int(index)] = token
        known = {t.content for t in self._added.values()}
        next_id = len(set(self.encoder) | known)
        for content in self.all_special_tokens:
            if content in known:
                continue
            if content in self.encoder:
                index = self.encoder[content]
            else:
                index, next_id = next_id, next_id + 1
            self._added[index] = AddedToken(content)
            known.add(content)
        self._rebuild()

    # --- construction helpers ---------------------------------------------------------------

    @staticmethod
    def _language_maps(
        lang2id: Optional[Mapping[str, int]], id2lang: Optional[Mapping[Union[int, str], str]]
    ) -> tuple[Optional[dict[str, int]], Optional[dict[int, str]]]:
        id2lang = None if id2lang is None else {int(k): v for k, v in id2lang.items()}
        lang2id = None if lang2id is None else {k: int(v) for k, v in lang2id.items()}
        if lang2id is not None and id2lang is not None:
            if len(lang2id) != len(id2lang) or any(id2lang.get(i) != lang for lang, i in lang2id.items()):
                raise ValueError(f"lang2id {lang2id} and id2lang {id2lang} disagree")
        elif lang2id is not None:
            id2lang = {i: lang for lang, i in lang2id.items()}
        elif id2lang is not None:
            lang2id = {lang: i for i, lang in id2lang.items()}
        return lang2id, id2lang

    def _rebuild(self) -> None:
        """Derived tables; call after changing the vocabulary, merges or added tokens."""
        self._added_encoder = {t.content: i for i, t in sorted(self._added.items())}
        self._token_to_id = {**self.encoder, **self._added_encoder}
        self._id_to_token = {**self.decoder, **{i: t.content for i, t in self._added.items()}}
        self._unk_id = self._token_to_id.get(self.unk_token)
        self._word_tokens: dict[str, tuple[str, ...]] = {}
        self._word_ids: dict[str, tuple[int, ...]] = {}
        self._bpe_cache: dict[str, str] = {}

        # Lowercasing protects special tokens (and normalised added tokens) from the lowering.
        protected = list(self.all_special_tokens) + [
            t.content for t in self._added.values() if not t.special and t.normalized
        ]
        # Lowering character by character is the same unless a protected token has capitals.
        self._lower_pattern = None
        if any(_lower_each_char(t) != t for t in protected):
            self._lower_pattern = re.compile("(" + "|".join(re.escape(t) for t in protected) + r")|(.+?)")

        contents = sorted(self._added_encoder, key=len, reverse=True)
        self._split_pattern = re.compile("(" + "|".join(map(re.escape, contents)) + ")") if contents else None
        self._added_first_chars = "".join(sorted({c[0] for c in contents}))
        self._strip_rules = {
            t.content: t for t in self._added.values() if t.lstrip or t.rstrip or t.single_word
        }

    # --- vocabulary -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of `vocab.json` (without added tokens)."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """Token → id, vocabulary and added tokens."""
        return dict(self.encoder, **self._added_encoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    @property
    def do_lower_case(self) -> bool:
        return self.do_lowercase_and_remove_accent

    @property
    def is_fast(self) -> bool:
        """False, as transformers' XLMTokenizer: no Rust tokenizer behind it. Unlike transformers',
        it still gives `return_offsets_mapping` and `word_ids()` (see `xlm.tokenizer.offsets`)."""
        return False

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[int, list[int], None]:
        """Id of a token (or list of ids); unknown tokens get `unk_token_id`."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id.get(tokens, self._unk_id)
        get, unk = self._token_to_id.get, self._unk_id
        return [get(t, unk) for t in tokens]

    def convert_ids_to_tokens(
        self, ids: Union[int, Sequence[int]], skip_special_tokens: bool = False
    ) -> Union[str, list[str]]:
        """Token of an id (or list of tokens); unknown ids give `unk_token`."""
        if isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0):
            return self._id_to_token.get(int(ids), self.unk_token)
        special = set(self.all_special_ids) if skip_special_tokens else ()
        get, unk = self._id_to_token.get, self.unk_token
        return [get(i, unk) for i in map(int, _to_list(ids)) if i not in special]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join BPE tokens: `</w>` becomes a space."""
        return "".join(tokens).replace("</w>", " ").strip()

    # --- tokenisation -----------------------------------------------------------------------

    def bpe(self, token: str) -> str:
        """BPE pieces of one word, space separated, the last one ending in `</w>`."""
        cached = self._bpe_cache.get(token)
        if cached is not None:
            return cached
        word = list(token[:-1]) + [token[-1] + "</w>"]
        ranks = self.bpe_ranks
        if len(word) > LONG_WORD:  # the loop below is quadratic in the word's length
            word = merge_symbols(word, ranks)
        while len(word) > 1:
            best, best_rank = None, None
            for pair in zip(word, word[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            first, second = best
            merged, i, end = [], 0, len(word) - 1
            while i <= end:
                if i < end and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        out = " ".join(word)
        if out == "\n  </w>":  # transformers' special case, kept for identical output
            out = "\n</w>"
        self._bpe_cache[token] = out
        return out

    def _check_lang(self, lang: Optional[str]) -> str:
        """The language whose rules apply: `lang`, or English rules when it is None."""
        if lang is None:
            return "en"
        if self.lang2id is not None:
            if lang not in self.lang2id:
                raise ValueError(
                    f"unknown language {lang!r}; this tokenizer's languages (lang2id) are {sorted(self.lang2id)}"
                )
            return lang
        _check_known_language(lang)
        return lang

    def _lower(self, text: str) -> str:
        if self.preprocessing != TRANSFORMERS:  # the original lowercases Moses' tokens instead
            return text
        if self._lower_pattern is not None:
            return self._lower_pattern.sub(lambda m: m.group(1) or m.group(2).lower(), text)
        return _lower_each_char(text)

    def _split_added(self, text: str) -> list[tuple[str, Optional[int]]]:
        """Split `text` on added tokens: [(piece, id of the added token or None)]."""
        if self.split_special_tokens or self._split_pattern is None:
            return [(text, None)]
        for char in self._added_first_chars:
            if char in text:
                break
        else:
            return [(text, None)]
        parts = self._split_pattern.split(text)
        if len(parts) == 1:
            return [(text, None)]
        if self._strip_rules:
            for i in range(1, len(parts), 2):
                rule = self._strip_rules.get(parts[i])
                if rule is None:
                    continue
                if rule.rstrip:
                    parts[i + 1] = parts[i + 1].lstrip()
                if rule.lstrip:
                    parts[i - 1] = parts[i - 1].rstrip()
                if rule.single_word and parts[i - 1] and parts[i - 1][-1] != " ":
                    parts[i - 1] += parts[i]
                    parts[i] = ""
                elif rule.single_word and parts[i + 1] and parts[i + 1][0] != " ":
                    parts[i + 1] = parts[i] + parts[i + 1]
                    parts[i] = ""
        added = self._added_encoder
        return [(p, added[p] if i % 2 else None) for i, p in enumerate(parts) if p]

    def _words(self, text: str, lang: str) -> tuple[list[str], bool]:
        """Words of a text piece without added tokens, and whether they still need lowercasing
        and accent stripping (done per word, cached, when the words hold no spaces)."""
        if self.preprocessing != TRANSFORMERS:
            return _original_words(text, lang, self.do_lowercase_and_remove_accent)
        pipeline = _PIPELINES.get(lang) or _pipeline(lang)
        words = pipeline.words(text)
        if self.do_lowercase_and_remove_accent and not pipeline.space_free_words:
            return lowercase_and_remove_accent(words), False
        return words, self.do_lowercase_and_remove_accent

    def _word_to_tokens(self, word: str, strip: bool) -> tuple[str, ...]:
        if strip:
            word = _strip_accents(word)
        return tuple(self.bpe(word).split(" ")) if word else ()

    def _piece_tokens(self, text: str, lang: str) -> list[str]:
        words, strip = self._words(text, lang)
        cache = self._word_tokens if strip else {}
        out: list[str] = []
        for word in words:
            tokens = cache.get(word)
            if tokens is None:
                tokens = self._word_to_tokens(word, strip)
                if strip:
                    cache[word] = tokens
            out.extend(tokens)
        return out

    def _piece_ids(self, text: str, lang: str) -> list[int]:
        words, strip = self._words(text, lang)
        cache = self._word_ids if strip else {}
        get, unk = self._token_to_id.get, self._unk_id
        out: list[int] = []
        for word in words:
            ids = cache.get(word)
            if ids is None:
                ids = tuple(get(t, unk) for t in self._word_to_tokens(word, strip))
                if strip:
                    if len(cache) > 1_000_000:  # bound memory on endless streams of new words
                        cache.clear()
                    cache[word] = ids
            out.extend(ids)
        return out

    def tokenize(self, text: str, lang: Optional[str] = None) -> list[str]:
        """BPE tokens of `text`; special tokens in the text are kept whole.

        `lang=None` gives exactly transformers' `tokenize` (English Moses rules); a language
        code applies that language's rules (as transformers' internal `_tokenize(text, lang)`).
        """
        lang = self._check_lang(lang)
        if self.do_lowercase_and_remove_accent:
            text = self._lower(text)
        out: list[str] = []
        for piece, added_id in self._split_added(text):
            if added_id is not None:
                out.append(piece)
            else:
                out.extend(self._piece_tokens(piece, lang))
        return out

    def _text_to_ids(self, text: str, lang: str) -> list[int]:
        if self.do_lowercase_and_remove_accent:
            text = self._lower(text)
        pieces = self._split_added(text)
        if len(pieces) == 1 and pieces[0][1] is None:
            return self._piece_ids(text, lang)
        out: list[int] = []
        for piece, added_id in pieces:
            if added_id is not None:
                out.append(added_id)
            else:
                out.extend(self._piece_ids(piece, lang))
        return out

    def _get_input_ids(self, text: TextOrIds, lang: str, is_split_into_words: bool) -> list[int]:
        if isinstance(text, str):
            return self._text_to_ids(text, lang)
        if isinstance(text, (list, tuple)):
            if not text:
                return []
            if isinstance(text[0], str):
                if is_split_into_words:
                    return [i for word in text for i in self._text_to_ids(word, lang)]
                return self.convert_tokens_to_ids(text)  # a list of tokens
            if isinstance(text[0], int):
                return list(text)
        raise ValueError(
            f"input must be a string, a list of strings (tokens, or words with is_split_into_words=True) "
            f"or a list of ids; got {type(text).__name__}"
        )

    # --- special-token layout ---------------------------------------------------------------

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None
    ) -> list[int]:
        """`<s> A </s>` or `<s> A </s> B </s>`."""
        bos, sep = [self.bos_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return bos + list(token_ids_0) + sep
        return bos + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: Optional[list[int]] = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` puts a special token, else 0."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "token_ids_1 must be None when already_has_special_tokens=True (the ids already hold both)"
                )
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in token_ids_0]
        if token_ids_1 is not None:
            return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]
        return [1] + [0] * len(token_ids_0) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None
    ) -> list[int]:
        """0 for `<s> A </s>`, 1 for `B </s>`."""
        cls_len = int(self.cls_token_id is not None)
        sep_len = int(self.sep_token_id is not None)
        first = [0] * (cls_len + len(token_ids_0) + sep_len)
        if token_ids_1 is None:
            return first
        return first + [1] * (len(token_ids_1) + sep_len)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def _langs_for(self, lang: Any, return_langs: Optional[bool]) -> tuple[tuple[str, str], Optional[tuple[int, int]]]:
        """(rule languages for A and B, language ids for A and B or None)."""
        if isinstance(lang, (list, tuple)):
            if len(lang) != 2:
                raise ValueError(f"lang must be a code or a pair (lang_a, lang_b) of codes; got {lang!r}")
            rules = (self._check_lang(lang[0]), self._check_lang(lang[1]))
            given = lang[0] is not None and lang[1] is not None
        else:
            rules = (self._check_lang(lang),) * 2
            given = lang is not None
        if return_langs is None:
            return_langs = given and self.lang2id is not None
        if not return_langs:
            return rules, None
        if not given:
            raise ValueError("return_langs=True needs lang= (the language of the text)")
        if self.lang2id is None:
            raise ValueError("return_langs=True needs a tokenizer with lang2id (language ids of the model)")
        pair = lang if isinstance(lang, (list, tuple)) else (lang, lang)
        return rules, (self.lang2id[pair[0]], self.lang2id[pair[1]])

    def __call__(
        self,
        text: Union[TextOrIds, Sequence[TextOrIds], None] = None,
        text_pair: Union[TextOrIds, Sequence[TextOrIds], None] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
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
        lang: Union[str, tuple[Optional[str], Optional[str]], None] = None,
        return_langs: Optional[bool] = None,
    ) -> BatchEncoding:
        """Encode one text (or pair) or a batch of them, as transformers' tokenizer call does.

        Returns input_ids, token_type_ids and attention_mask (plus special_tokens_mask, length
        and langs when asked). `lang` (a code, or a pair of codes for `text_pair`) picks the
        language rules; with `lang2id` it also fills `langs` (unless `return_langs=False`).
        """
        if text is None:
            raise ValueError("text is required")
        batched = self._is_batch(text, is_split_into_words)
        if text_pair is not None and batched != self._is_batch(text_pair, is_split_into_words):
            raise ValueError("text and text_pair must both be single inputs or both be batches")
        if not batched:
            examples = [(text, text_pair)]
        elif text_pair is not None:
            if len(text) != len(text_pair):
                raise ValueError(f"text has {len(text)} items but text_pair has {len(text_pair)}")
            examples = list(zip(text, text_pair))
        else:
            examples = []
            for item in text:
                if isinstance(item, str) or (is_split_into_words and item and not isinstance(item[0], (list, tuple))):
                    examples.append((item, None))
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    examples.append(tuple(item))
                else:
                    raise ValueError(f"a batch holds texts or (text, text_pair) pairs; got {item!r}")
        return self._encode_examples(
            examples,
            batched,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
            verbose=verbose,
            lang=lang,
            return_langs=return_langs,
        )

    def _encode_examples(
        self,
        examples: list[tuple[Any, Any]],
        batched: bool,
        *,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
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
        lang: Union[str, tuple[Optional[str], Optional[str]], None] = None,
        return_langs: Optional[bool] = None,
    ) -> BatchEncoding:
        """Encode (text, text_pair or None) examples; one result row per example."""
        del verbose  # transformers' logging switch; nothing is logged here
        if return_offsets_mapping or return_overflowing_tokens or stride:
            from xlm.tokenizer.offsets import encode_examples_aligned

            return encode_examples_aligned(
                self, examples, batched, add_special_tokens=add_special_tokens, padding=padding,
                truncation=truncation, max_length=max_length, stride=stride,
                is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side, return_tensors=return_tensors,
                return_token_type_ids=return_token_type_ids, return_attention_mask=return_attention_mask,
                return_overflowing_tokens=return_overflowing_tokens,
                return_special_tokens_mask=return_special_tokens_mask,
                return_offsets_mapping=return_offsets_mapping, return_length=return_length, lang=lang,
                return_langs=return_langs,
            )
        if return_token_type_ids and not add_special_tokens:
            raise ValueError(
                "return_token_type_ids=True with add_special_tokens=False is undefined; leave it None"
            )
        if padding_side is not None and padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        (lang_a, lang_b), lang_ids = self._langs_for(lang, return_langs)
        if return_token_type_ids is None:
            return_token_type_ids = True
        if return_attention_mask is None:
            return_attention_mask = True

        rows = []
        for first, second in examples:
            ids = self._get_input_ids(first, lang_a, is_split_into_words)
            pair_ids = None if second is None else self._get_input_ids(second, lang_b, is_split_into_words)
            rows.append(
                self._prepare(ids, pair_ids, add_special_tokens, truncation, max_length,
                              return_token_type_ids, return_special_tokens_mask, lang_ids,
                              return_length and batched)
            )
        keys = list(rows[0]) if rows else ["input_ids"]
        batch = {k: [r[k] for r in rows] for k in keys}
        if padding != "do_not_pad" or return_attention_mask:
            batch = self._pad_batch(batch, padding, max_length, pad_to_multiple_of,
                                    padding_side or self.padding_side, return_attention_mask)
        if return_length and not batched:  # after padding, as transformers does for one input
            batch["length"] = [len(r) for r in batch["input_ids"]]
        if "langs" in batch:  # keep transformers' key order, languages last
            batch["langs"] = batch.pop("langs")
        if not batched:
            batch = {k: v[0] for k, v in batch.items()}
        return BatchEncoding(batch).convert_to_tensors(return_tensors, prepend_batch_axis=not batched)

    @staticmethod
    def _is_batch(text: Any, is_split_into_words: bool) -> bool:
        if isinstance(text, str):
            return False
        if not isinstance(text, (list, tuple)):
            raise ValueError(f"text must be a string or a list/tuple; got {type(text).__name__}")
        if is_split_into_words:
            return bool(text) and isinstance(text[0], (list, tuple))
        return not (text and isinstance(text[0], int))

    def encode_plus(self, text: TextOrIds, text_pair: Optional[TextOrIds] = None, **kwargs: Any) -> BatchEncoding:
        """One text (or pair); a list of strings is a list of tokens (or words, with
        is_split_into_words=True), not a batch."""
        return self._encode_examples([(text, text_pair)], False, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        """A batch of texts or (text, pair) tuples: same as calling the tokenizer on it."""
        return self(list(batch_text_or_text_pairs), **kwargs)

    def encode(
        self,
        text: TextOrIds,
        text_pair: Optional[TextOrIds] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
        lang: Union[str, tuple[Optional[str], Optional[str]], None] = None,
        **kwargs: Any,
    ) -> Any:
        """Ids of one text (or pair), with `<s> … </s>` unless add_special_tokens=False."""
        if isinstance(text, (list, tuple)) and text and isinstance(text[0], (list, tuple)):
            raise ValueError("encode takes one text (or pair); call the tokenizer for a batch")
        encoded = self.encode_plus(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
            return_token_type_ids=False if not add_special_tokens else None,
            return_attention_mask=False,
            lang=lang,
            return_langs=False,
            **kwargs,
        )
        return encoded["input_ids"]

    # --- decoding ---------------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        spaces_between_special_tokens: bool = True,
    ) -> str:
        """Text of `token_ids` as transformers' decode gives it (`</w>` → space, no detokenising)."""
        ids = _to_list(token_ids)
        if isinstance(ids, int):
            ids = [ids]
        specials = self.all_special_tokens
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        # Added tokens that are not special (and additional special tokens outside the
        # vocabulary) are decoded on their own and joined with spaces.
        separate = {t.content for t in self._added.values()} - set(specials)
        separate |= {t for t in self.additional_special_tokens if (self._token_id(t) or 0) >= self.vocab_size}
        texts: list[str] = []
        current: list[str] = []
        for token in tokens:
            if skip_special_tokens and token in specials:
                continue
            if token in separate:
                if current:
                    string = self.convert_tokens_to_string(current)
                    if string:
                        texts.append(string)
                    current = []
                texts.append(token)
            else:
                current.append(token)
        if current:
            texts.append(self.convert_tokens_to_string(current))
        text = (" " if spaces_between_special_tokens else "").join(texts)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, sequences: Any, **kwargs: Any) -> list[str]:
        """`decode` of each sequence."""
        return [self.decode(seq, **kwargs) for seq in _to_list(sequences)]

    @staticmethod
    def clean_up_tokenization(text: str) -> str:
        """Remove spaces before punctuation and English contractions (transformers' rule)."""
        return (
            text.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    # --- files ------------------------------------------------------------------------------

    def save_vocabulary(self, save_directory: str, filename_prefix: Optional[str] = None) -> tuple[str, str]:
        """Write vocab.json and merges.txt (as transformers does); returns their paths."""
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(f"save_vocabulary needs an existing directory, got {save_directory!r}")
        prefix = filename_prefix + "-" if filename_prefix else ""
        vocab_path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])
        merges_path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["merges_file"])
        _atomic_write(vocab_path, _json_dumps(self.encoder))
        ordered = sorted(self.bpe_ranks.items(), key=lambda item: item[1])
        _atomic_write(merges_path, "".join(f"{a} {b}\n" for (a, b), _ in ordered))
        return vocab_path, merges_path

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = dict(self.init_kwargs)
        config.update(
            {
                "added_tokens_decoder": {str(i): t.to_dict() for i, t in sorted(self._added.items())},
                "additional_special_tokens": list(self.additional_special_tokens),
                "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                "do_lowercase_and_remove_accent": self.do_lowercase_and_remove_accent,
                "extra_special_tokens": {},
                "id2lang": None if self.id2lang is None else {str(k): v for k, v in self.id2lang.items()},
                "lang2id": self.lang2id,
                "model_max_length": self.model_max_length,
                "tokenizer_class": "XLMTokenizer",
            }
        )
        for attr in SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            if getattr(self, attr) is not None:
                config[attr] = getattr(self, attr)
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        if self.split_special_tokens:
            config["split_special_tokens"] = True
        if self.preprocessing != TRANSFORMERS:  # absent: transformers' format, read as before
            config["preprocessing"] = self.preprocessing
        return config

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> tuple[str, ...]:
        """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json
        (readable by transformers' `XLMTokenizer.from_pretrained`)."""
        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"{save_directory!r} is a file; save_pretrained needs a directory")
        os.makedirs(save_directory, exist_ok=True)
        config_path = os.path.join(save_directory, TOKENIZER_CONFIG_FILE)
        map_path = os.path.join(save_directory, SPECIAL_TOKENS_MAP_FILE)
        _atomic_write(config_path, _json_dumps(self._config()))
        _atomic_write(map_path, _json_dumps(self.special_tokens_map))
        return (config_path, map_path) + self.save_vocabulary(save_directory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: Optional[str] = None,
        private: Optional[bool] = None,
        token: Any = None,
        create_pr: bool = False,
        revision: Optional[str] = None,
        commit_description: Optional[str] = None,
    ) -> Any:
        """Upload what `save_pretrained` writes to the Hub model repository `repo_id` (created if needed),
        as transformers' `push_to_hub`; needs `huggingface_hub` (see `xlm.hub.push_folder_to_hub`)."""
        from xlm.hub import push_folder_to_hub

        return push_folder_to_hub(
            self.save_pretrained, repo_id, commit_message=commit_message or "Upload tokenizer", private=private,
            token=token, create_pr=create_pr, revision=revision, commit_description=commit_description,
            what="the tokenizer",
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
        local_files_only: bool = False,
        token: Any = None,
        subfolder: Optional[str] = None,
        **kwargs: Any,
    ) -> "XLMTokenizer":
        """Load from a directory written by `save_pretrained` (ours or transformers'), or from
        a Hugging Face Hub repository id (needs `huggingface_hub`). `kwargs` override the saved
        configuration."""
        from xlm.hub import resolve_file

        hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                   token=token, subfolder=subfolder)
        vocab_file = resolve_file(name_or_path, VOCAB_FILES_NAMES["vocab_file"], **hub)
        merges_file = resolve_file(name_or_path, VOCAB_FILES_NAMES["merges_file"], **hub)
        config_file = resolve_file(name_or_path, TOKENIZER_CONFIG_FILE, required=False, **hub)
        map_file = resolve_file(name_or_path, SPECIAL_TOKENS_MAP_FILE, required=False, **hub)
        config: dict[str, Any] = {}
        if config_file is not None:
            config = read_json_object(config_file)
            saved_class = config.get("tokenizer_class")
            if saved_class not in (None, "XLMTokenizer"):
                raise ValueError(f"{config_file} is for a {saved_class}, not an XLMTokenizer")
        if map_file is not None:
            for key, value in read_json_object(map_file).items():
                config.setdefault(key, value)
        for key in ("vocab_file", "merges_file", "auto_map", "processor_class"):
            config.pop(key, None)
        config.update(kwargs)
        tokenizer = cls(vocab_file, merges_file, **config)
        tokenizer.name_or_path = os.fspath(name_or_path)
        return tokenizer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for cache in ("_word_tokens", "_word_ids", "_bpe_cache"):
            state[cache] = {}
        state.pop("_offset_words", None)  # xlm.tokenizer.offsets' word cache
        return state

    def __repr__(self) -> str:
        return (
            f"XLMTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"merges={len(self.bpe_ranks)}, languages={None if self.lang2id is None else sorted(self.lang2id)}, "
            f"lowercase_and_remove_accent={self.do_lowercase_and_remove_accent})"
        )

