"""XLM tokenizer: Moses pre-tokenisation per language, then BPE with `</w>` word ends.

Output (token strings and ids) is identical to Hugging Face transformers' `XLMTokenizer`
(4.57) when no `lang=` is given; with `lang=` the rules of that language apply, as in
transformers' internal `_tokenize(text, lang=...)`. It is faster: Moses regexes that cannot
match are skipped, and the per-word work (accent stripping, BPE, vocabulary look-up) is cached.

Deliberate differences from transformers, all documented where they happen:
- `merges.txt` without a final newline keeps its last merge (transformers drops it), and a
  leading `#version` line is a header, not a merge.
- `lang=` is honoured by `tokenize`, `encode` and `__call__` (transformers ignores it), and an
  unknown language code raises ValueError.
- `id2lang` keys are ints after loading a saved tokenizer (transformers leaves them strings).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = [
    "XLMTokenizer",
    "BatchEncoding",
    "AddedToken",
    "VOCAB_FILES_NAMES",
    "DEFAULT_SPECIAL_TOKENS",
    "pre_tokenize",
    "lowercase_and_remove_accent",
    "replace_unicode_punct",
    "remove_non_printing_char",
    "romanian_preprocessing",
    "read_merges",
]

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

#: The original XLM dictionary starts with these, at ids 0..13 (`<special1>` is the mask).
DEFAULT_SPECIAL_TOKENS = ("<s>", "</s>", "<pad>", "<unk>") + tuple(f"<special{i}>" for i in range(10))
DEFAULT_ADDITIONAL_SPECIAL_TOKENS = tuple(f"<special{i}>" for i in range(10))

# what `pad` pads (transformers' model inputs, plus our langs); other keys such as labels are left as given
_PADDED_KEYS = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "langs")

#: transformers' "no maximum length" value of `model_max_length`.
VERY_LARGE_INTEGER = int(1e30)
_LARGE_INTEGER = int(1e20)

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "additional_special_tokens",
)

#: Languages segmented by a dedicated word segmenter instead of the Moses tokenizer.
CUSTOM_SEGMENTER_LANGUAGES = ("ja", "th", "zh")

# ---------------------------------------------------------------------------------------------
# Text normalisation (ports of the Moses scripts transformers uses, same results)
# ---------------------------------------------------------------------------------------------

# replace-unicode-punctuation.perl: single characters (applied as one translate table; none of
# the targets contains a source character, so the order of the original does not matter) ...
_UNICODE_PUNCT_TABLE = str.maketrans(
    {
        "，": ",",
        "、": ",",
        "”": '"',
        "“": '"',
        "∶": ":",
        "：": ":",
        "？": "?",
        "《": '"',
        "》": '"',
        "）": ")",
        "！": "!",
        "（": "(",
        "；": ";",
        "１": "1",
        "」": '"',
        "「": '"',
        "０": "0",
        "３": "3",
        "２": "2",
        "５": "5",
        "６": "6",
        "９": "9",
        "７": "7",
        "８": "8",
        "４": "4",
        "～": "~",
        "’": "'",
        "…": "...",
        "━": "-",
        "〈": "<",
        "〉": ">",
        "【": "[",
        "】": "]",
        "％": "%",
    }
)
# ... and the two full stops, which also swallow the whitespace after them.
_IDEOGRAPHIC_FULL_STOP = re.compile(r"。\s*")
_FULLWIDTH_FULL_STOP = re.compile(r"．\s*")


def replace_unicode_punct(text: str) -> str:
    """Replace CJK / full-width punctuation by ASCII (Moses replace-unicode-punctuation.perl)."""
    if text.isascii():
        return text
    text = text.translate(_UNICODE_PUNCT_TABLE)
    if "。" in text:
        text = _IDEOGRAPHIC_FULL_STOP.sub(". ", text)
    if "．" in text:
        text = _FULLWIDTH_FULL_STOP.sub(". ", text)
    return text


_OTHER_CATEGORY: dict[str, bool] = {}  # char -> unicode category starts with "C"


def remove_non_printing_char(text: str) -> str:
    """Delete every character of unicode category C* (control, format, unassigned, ...)."""
    if text.isprintable():  # no C* character (and no separator other than " ")
        return text
    doomed = []
    for char in set(text):
        other = _OTHER_CATEGORY.get(char)
        if other is None:
            other = _OTHER_CATEGORY[char] = unicodedata.category(char).startswith("C")
        if other:
            doomed.append(char)
    if not doomed:
        return text
    return text.translate(dict.fromkeys(map(ord, doomed)))


def romanian_preprocessing(text: str) -> str:
    """Sennrich's WMT16 Romanian normalisation: cedilla to comma forms, then drop diacritics."""
    text = text.replace("\u015e", "\u0218").replace("\u015f", "\u0219")
    text = text.replace("\u0162", "\u021a").replace("\u0163", "\u021b")
    text = text.replace("\u0218", "S").replace("\u0219", "s")
    text = text.replace("\u021a", "T").replace("\u021b", "t")
    text = text.replace("\u0102", "A").replace("\u0103", "a")
    text = text.replace("\u00c2", "A").replace("\u00e2", "a")
    text = text.replace("\u00ce", "I").replace("\u00ee", "i")
    return text


def _strip_accents(word: str) -> str:
    """Lowercase, NFD, drop combining marks (Mn), lowercase again."""
    word = word.lower()
    if word.isascii():
        return word
    word = unicodedata.normalize("NFD", word)
    return "".join([c for c in word if unicodedata.category(c) != "Mn"]).lower()


def lowercase_and_remove_accent(words: Sequence[str]) -> list[str]:
    """XLM's lowercase_and_remove_accent.py on a list of words (may return empty words)."""
    return _strip_accents(" ".join(words)).split(" ")


def _lower_each_char(text: str) -> str:
    """`str.lower` one character at a time, as transformers does before tokenising.

    The only context-dependent mapping of `str.lower` is the Greek final sigma; lowering
    character by character never produces it.
    """
    if "Σ" in text:
        return "".join([c.lower() for c in text])
    return text.lower()


# ---------------------------------------------------------------------------------------------
# Moses through sacremoses, with the regexes that cannot match skipped
# ---------------------------------------------------------------------------------------------

try:  # the regex parser of the standard library, to find literals a pattern needs
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]


def _required_substrings(pattern: re.Pattern, replacement: Any = None) -> tuple[str, ...]:
    """Substrings that every match of `pattern` contains (empty when unknown).

    A substitution can be skipped when one of them is missing from the text. For `X+ -> X`
    (a literal run collapsed to one) the text must hold `XX` for the result to change.
    """
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or not isinstance(pattern.pattern, str):
        return ()
    if len(pattern.pattern) > 2000:  # huge character classes: parsing costs more than it saves
        return ()
    try:
        parsed = list(_sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # private API: if it changes, skip nothing
        return ()
    literal = _sre_parse.LITERAL
    subpattern = _sre_parse.SUBPATTERN
    repeats = (_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT) + (
        (_sre_parse.POSSESSIVE_REPEAT,) if hasattr(_sre_parse, "POSSESSIVE_REPEAT") else ()
    )
    if len(parsed) == 1 and parsed[0][0] in repeats:
        low, _, body = parsed[0][1]
        body = list(body)
        if low == 1 and len(body) == 1 and body[0][0] is literal and replacement == chr(body[0][1]):
            return (replacement * 2,)

    found: list[str] = []

    def walk(items: Iterable) -> None:
        run: list[str] = []
        for op, arg in items:
            if op is literal:
                run.append(chr(arg))
                continue
            if run:
                found.append("".join(run))
                run = []
            if op is subpattern:
                if not arg[1] & re.IGNORECASE:  # a scoped (?i:...) matches other literals
                    walk(arg[-1])
            elif op in repeats and arg[0] >= 1:
                walk(arg[2])
        if run:
            found.append("".join(run))

    walk(parsed)
    return tuple(found)


class _Substitution:
    """`pattern.sub(replacement, text)`, skipped when a substring every match needs is absent."""

    __slots__ = ("pattern", "replacement", "required")

    def __init__(self, pattern: Union[str, re.Pattern], replacement: Any) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.replacement = replacement
        self.required = _required_substrings(self.pattern, replacement)

    def __call__(self, text: str) -> str:
        for needed in self.required:
            if needed not in text:
                return text
        return self.pattern.sub(self.replacement, text)


# Inputs on which the fast paths are checked against sacremoses itself once per language; a
# sacremoses version that behaves differently makes us fall back to calling it directly.
_PROBES = (
    "Hello, world! It's 5,300 dollars... really?! (Yes) [no] {maybe} <tag> a--b",
    "Mr. Smith met Dr. Who at 5 p.m. in the U.S.A. today. No. 5 is here. no. 7, A. b.",
    "l'homme d'affaires aujourd'hui « bonjour » … “quoted” ‘single’ don't I'll we're you've",
    '"Quoted," she said. "Ends." He said "hi". \'tis cannot gonna gotta wanna gimme lemme',
    "Preis: 1\u00a0000\u00a0€ ; 50\u00a0% ; nº\u00a07 ; 20\u00a0ºC ; 3\u00a0cm ; what\u00a0? ok\u00a0! a\u00a0:",
    "e-mail foo/bar and/or 3/4 x@y.com http://example.com/a/b.html #tag @user 12:30",
    "End with quote.' Trailing '' and `` and ` marks ´´ „low“ ‚x‘ — dash – en",
    "DOTMULTI. DOTDOTMULTI x ..a .... b.. c.'",
    "  leading and   trailing \t whitespace\r\n ",
    "İstanbul ΟΔΟΣ Ωμέγα. Привет, мир! 東京、大阪。 ５０％ （注）「引用」",
    "Straße: 2.3.4 ; z.B. usw. ; S. 5 ; Nr. 3 ; Jan. 2020 ; ca. 10 ; vs. that ; etc.",
    "a . b .. c ... d , e ,f, g,h 1,2 1, 2 ,3 x,",
    "What?!... (a) (b). [c]. ''d'' ``e'' 'f' g's h' i 'j",
    "this is a longword. Another sentence; with: colons & ampersands | pipes",
)


class _FastPunctNormalizer:
    """sacremoses.MosesPunctNormalizer.normalize, skipping substitutions that cannot match."""

    def __init__(self, normalizer: Any) -> None:
        self._normalizer = normalizer
        self._substitutions = [_Substitution(p, r) for p, r in normalizer.substitutions]
        self._pre = normalizer.pre_replace_unicode_punct
        self._post = normalizer.post_remove_control_chars

    def normalize(self, text: str) -> str:
        if self._pre:
            text = self._normalizer.replace_unicode_punct(text)
        for substitution in self._substitutions:
            text = substitution(text)
        if self._post:
            text = self._normalizer.remove_control_chars(text)
        return text.strip()


class _FastMosesTokenizer:
    """sacremoses.MosesTokenizer.tokenize(text, escape=False) with the same steps, skipping the
    regexes that cannot match and testing non-breaking prefixes against precomputed sets."""

    def __init__(self, moses: Any) -> None:
        self._moses = moses
        self._dedup_space, self._dedup_replacement = moses.DEDUPLICATE_SPACE
        self._ascii_junk = _Substitution(*moses.ASCII_JUNK)
        self._pad_not_alnum = _Substitution(*moses.PAD_NOT_ISALNUM)
        self._comma = [_Substitution(*moses.COMMA_SEPARATE_1), _Substitution(*moses.COMMA_SEPARATE_2),
                       _Substitution(*moses.COMMA_SEPARATE_3)]
        if moses.lang == "en":
            apostrophe = moses.ENGLISH_SPECIFIC_APOSTROPHE
        elif moses.lang in ("fr", "it"):
            apostrophe = moses.FR_IT_SPECIFIC_APOSTROPHE
        else:
            apostrophe = [moses.NON_SPECIFIC_APOSTROPHE]
        self._apostrophe = [_Substitution(*pair) for pair in apostrophe]
        self._trailing_dot_apostrophe = _Substitution(*moses.TRAILING_DOT_APOSTROPHE)
        self._nonbreaking = set(moses.NONBREAKING_PREFIXES)
        self._numeric_only = set(moses.NUMERIC_ONLY_PREFIXES)
        self._lower_chars = frozenset(moses.IsLower)
        self._alpha_chars: Optional[frozenset] = None  # large; built on first use
        self._digits = frozenset("0123456789")

    def _any_alpha(self, text: str) -> bool:
        if self._alpha_chars is None:
            self._alpha_chars = frozenset(self._moses.IsAlpha)
        return not self._alpha_chars.isdisjoint(text)

    def _nonbreaking_prefixes(self, text: str) -> str:
        tokens = text.split()
        last = len(tokens) - 1
        for i, token in enumerate(tokens):
            if len(token) < 2 or token[-1] != ".":
                continue
            prefix = token[:-1]
            if (
                ("." in prefix and self._any_alpha(prefix))
                or (prefix in self._nonbreaking and prefix not in self._numeric_only)
                or (i != last and tokens[i + 1][0] in self._lower_chars)
            ):
                continue
            if prefix in self._numeric_only and i < last and tokens[i + 1][0] in self._digits:
                continue
            tokens[i] = prefix + " ."
        return " ".join(tokens)

    def tokenize(self, text: str) -> list[str]:
        moses = self._moses
        text = self._dedup_space.sub(self._dedup_replacement, text)
        if not text.isprintable():
            text = self._ascii_junk(text)
        text = self._pad_not_alnum(text.strip())
        if ".." in text or "DOTMULTI" in text:
            text = moses.replace_multidots(text)
        if "," in text:
            for substitution in self._comma:
                text = substitution(text)
        if "'" in text:
            for substitution in self._apostrophe:
                text = substitution(text)
        if "." in text:  # without a full stop the prefix pass only re-spaces the text
            text = self._nonbreaking_prefixes(text)
        text = self._dedup_space.sub(self._dedup_replacement, text).strip()
        text = self._trailing_dot_apostrophe(text)
        if "DOTMULTI" in text:
            text = moses.restore_multidots(text)
        return text.split()


def _self_checked(make_fast: Any, reference: Any, name: str) -> Any:
    """`make_fast()` when it builds and agrees with `reference` on the probe inputs, else
    `reference` (with a warning): a sacremoses version we do not know stays correct, only slower."""
    problem = None
    try:
        fast = make_fast()
        for probe in _PROBES:
            if fast(probe) != reference(probe):
                problem = f"disagrees with the installed sacremoses on {probe!r}"
                break
    except Exception as err:  # e.g. an attribute renamed in another sacremoses version
        problem = f"cannot be built for the installed sacremoses ({err!r})"
    if problem is None:
        return fast
    import warnings

    warnings.warn(
        f"xlm.tokenizer: the fast {name} {problem}; using sacremoses directly (slower, same results)",
        RuntimeWarning,
        stacklevel=3,
    )
    return reference


def _import_sacremoses() -> Any:
    try:
        import sacremoses
    except ImportError as err:
        raise ImportError("XLMTokenizer needs the sacremoses package: pip install sacremoses") from err
    return sacremoses


class _LanguagePipeline:
    """Text to words for one language: everything before lowercasing and BPE."""

    def __init__(self, lang: str) -> None:
        sacremoses = _import_sacremoses()
        self.lang = lang
        normalizer = sacremoses.MosesPunctNormalizer(lang=lang)
        self._normalize = _self_checked(
            lambda: _FastPunctNormalizer(normalizer).normalize, normalizer.normalize, f"Moses normaliser ({lang})"
        )
        # Words from Moses hold no spaces, so lowercasing / accent stripping can be done per word.
        self.space_free_words = lang not in CUSTOM_SEGMENTER_LANGUAGES
        self._tokenize = None
        if self.space_free_words:
            moses = sacremoses.MosesTokenizer(lang=lang)

            def reference(text: str) -> list[str]:
                return moses.tokenize(text, return_str=False, escape=False)

            self._tokenize = _self_checked(
                lambda: _FastMosesTokenizer(moses).tokenize, reference, f"Moses tokenizer ({lang})"
            )
        self._segmenter: Any = None

    def clean(self, text: str) -> str:
        """Unicode punctuation, Moses punctuation normalisation, non-printing characters."""
        return remove_non_printing_char(self._normalize(replace_unicode_punct(text)))

    def words(self, text: str) -> list[str]:
        lang = self.lang
        if self._tokenize is not None:
            text = self.clean(text)
            if lang == "ro":
                text = romanian_preprocessing(text)
            return self._tokenize(text)
        if lang == "zh":
            text = " ".join(self._segment_zh(text))
            return self.clean(text).split()
        text = self.clean(text)
        if lang == "th":
            return list(self._segment_th(text))
        return list(self._segment_ja(text))

    def _segment_zh(self, text: str) -> list[str]:
        if self._segmenter is None:
            try:
                import rjieba
            except ImportError as err:
                raise ImportError(
                    "Chinese (lang='zh') is segmented with rjieba, which is not installed: pip install rjieba"
                ) from err
            self._segmenter = rjieba.cut
        return self._segmenter(text)

    def _segment_th(self, text: str) -> list[str]:
        if self._segmenter is None:
            try:
                from pythainlp.tokenize import word_tokenize
            except ImportError as err:
                raise ImportError(
                    "Thai (lang='th') is segmented with PyThaiNLP, which is not installed: pip install pythainlp"
                ) from err
            self._segmenter = word_tokenize
        return self._segmenter(text)

    def _segment_ja(self, text: str) -> list[str]:
        if self._segmenter is None:
            try:
                import Mykytea
            except ImportError as err:
                raise ImportError(
                    "Japanese (lang='ja') is segmented with KyTea, whose Python wrapper is not installed: "
                    "pip install kytea (it also needs a KyTea model at ~/local/share/kytea/model.bin)"
                ) from err
            model = os.path.join(os.path.expanduser("~"), "local", "share", "kytea", "model.bin")
            self._segmenter = Mykytea.Mykytea(f"-model {model}")
        return self._segmenter.getWS(text)


_PIPELINES: dict[str, _LanguagePipeline] = {}


def _pipeline(lang: str) -> _LanguagePipeline:
    pipeline = _PIPELINES.get(lang)
    if pipeline is None:
        pipeline = _PIPELINES[lang] = _LanguagePipeline(lang)
    return pipeline


@functools.lru_cache(maxsize=None)
def _languages_with_rules() -> tuple[str, ...]:
    """Language codes with Moses non-breaking prefixes or a dedicated segmenter."""
    try:
        from sacremoses.corpus import NonbreakingPrefixes

        moses_langs = set(NonbreakingPrefixes().available_langs.values())
    except Exception:  # pragma: no cover - very old sacremoses
        moses_langs = {"en", "fr", "de", "ro"}
    return tuple(sorted(moses_langs | set(CUSTOM_SEGMENTER_LANGUAGES)))


def _check_known_language(lang: str) -> None:
    if lang not in _languages_with_rules():
        raise ValueError(
            f"unknown language {lang!r}; known codes: {list(_languages_with_rules())} (a tokenizer "
            "with lang2id accepts the codes listed there)"
        )


def pre_tokenize(text: str, lang: str = "en", lowercase_and_strip_accents: bool = True) -> list[str]:
    """Words of `text` as XLMTokenizer sees them before BPE (no special-token handling)."""
    _check_known_language(lang)
    if lowercase_and_strip_accents:
        text = _lower_each_char(text)
    pipeline = _pipeline(lang)
    words = pipeline.words(text)
    if not lowercase_and_strip_accents:
        return [w for w in words if w]
    if pipeline.space_free_words:
        words = [_strip_accents(w) for w in words]
    else:
        words = lowercase_and_remove_accent(words)
    return [w for w in words if w]


# ---------------------------------------------------------------------------------------------
# Small containers
# ---------------------------------------------------------------------------------------------


@dataclass
class AddedToken:
    """A token matched in the raw text before tokenisation (special tokens, user-added tokens)."""

    content: str
    special: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The form transformers writes in `added_tokens_decoder`."""
        return {
            "content": self.content,
            "lstrip": self.lstrip,
            "normalized": self.normalized,
            "rstrip": self.rstrip,
            "single_word": self.single_word,
            "special": self.special,
        }


class BatchEncoding(dict):
    """The tokenizer's output: a dict of lists (or tensors) whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key {name!r}; keys: {list(self)}") from None

    def __getstate__(self) -> dict:
        return dict(self)

    def __setstate__(self, state: dict) -> None:
        self.update(state)

    def convert_to_tensors(
        self, tensor_type: Optional[str] = None, prepend_batch_axis: bool = False
    ) -> "BatchEncoding":
        """Turn every value into an "np", "pt" or "tf" tensor (in place; returns self)."""
        if tensor_type is None:
            return self
        convert = _tensor_converter(tensor_type)
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            lengths = {len(row) for row in value} if value and isinstance(value[0], list) else set()
            if len(lengths) > 1:
                fix = ("pass padding=True (or padding='max_length') to pad them" if key in _PADDED_KEYS
                       else "the tokenizer pads only " + ", ".join(_PADDED_KEYS) + ": pad it yourself (labels with -100)")
                raise ValueError(
                    f"cannot make a {tensor_type!r} tensor of {key!r}: its rows have different lengths "
                    f"{sorted(lengths)}; {fix}"
                )
            self[key] = convert(value)
        return self

    def to(self, device: Any) -> "BatchEncoding":
        """Move PyTorch tensors to `device` (in place; returns self)."""
        for key, value in self.items():
            if hasattr(value, "to"):
                self[key] = value.to(device)
        return self


def _tensor_converter(tensor_type: str):
    tensor_type = getattr(tensor_type, "value", tensor_type)  # transformers' TensorType enum
    if tensor_type == "np":
        import numpy as np

        return np.asarray
    if tensor_type == "pt":
        try:
            import torch
        except ImportError as err:
            raise ImportError("return_tensors='pt' needs PyTorch: pip install torch") from err
        return torch.tensor
    if tensor_type == "tf":
        try:
            import tensorflow as tf
        except ImportError as err:
            raise ImportError("return_tensors='tf' needs TensorFlow: pip install tensorflow") from err
        return tf.constant
    raise ValueError(f"unknown return_tensors {tensor_type!r}; use None, 'np', 'pt' or 'tf'")


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; read once
    os.umask(mask)
    return mask


def _atomic_write(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_merges(path: str) -> list[tuple[str, str]]:
    """Read BPE merges ("a b" per line; fastBPE's "a b count" keeps the first two fields).

    A first line starting with "#version" is a header. The last line is kept even without a
    final newline (transformers drops it).
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}: line {number} holds one field ({line!r}); a merge needs two")
        merges.append((fields[0], fields[1]))
    return merges


def _read_vocab(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as handle:
        vocab = json.load(handle)
    if not isinstance(vocab, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in vocab.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping token strings to integer ids")
    return vocab


def _special_token(token: Any, key: str) -> Any:
    """A special token given to `add_special_tokens`: a string becomes a non-normalised AddedToken."""
    if isinstance(token, str):
        return AddedToken(token, special=True, normalized=False)
    if all(hasattr(token, f) for f in AddedToken.__dataclass_fields__):
        return token
    raise ValueError(f"{key} must be a str or an AddedToken, got {type(token).__name__}")


def _token_content(token: Any) -> Any:
    """A special token from a config: a string, or transformers' serialised AddedToken dict."""
    if isinstance(token, dict) and "content" in token:
        return token["content"]
    if isinstance(token, (list, tuple)):
        return [_token_content(t) for t in token]
    return getattr(token, "content", token)


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------

TextOrIds = Union[str, Sequence[str], Sequence[int]]
TokenLike = Union[str, "AddedToken"]


class XLMTokenizer:
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

    # --- special tokens ---------------------------------------------------------------------

    @property
    def special_tokens_map(self) -> dict[str, Union[str, list[str]]]:
        """Special-token attribute → token, for the ones that are set."""
        out: dict[str, Union[str, list[str]]] = {}
        for attr in SPECIAL_TOKENS_ATTRIBUTES:
            value = getattr(self, attr)
            if value:
                out[attr] = list(value) if attr == "additional_special_tokens" else value
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token once, in transformers' order (bos, eos, unk, sep, pad, cls, mask, others)."""
        seen: list[str] = []
        for attr in SPECIAL_TOKENS_ATTRIBUTES:
            value = getattr(self, attr)
            for token in value if isinstance(value, list) else [value]:
                if token and token not in seen:
                    seen.append(token)
        return seen

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of `all_special_tokens`, same order."""
        return [self._token_id(t) for t in self.all_special_tokens]

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return [self._token_id(t) for t in self.additional_special_tokens]

    def _token_id(self, token: Optional[str]) -> Optional[int]:
        if token is None:
            return None
        return self._token_to_id.get(token, self._unk_id)

    @property
    def bos_token_id(self) -> Optional[int]:
        return self._token_id(self.bos_token)

    @property
    def eos_token_id(self) -> Optional[int]:
        """None by default, like transformers: XLM ends sequences with `sep_token` ("</s>")."""
        return self._token_id(self.eos_token)

    @property
    def unk_token_id(self) -> Optional[int]:
        return self._token_id(self.unk_token)

    @property
    def sep_token_id(self) -> Optional[int]:
        return self._token_id(self.sep_token)

    @property
    def pad_token_id(self) -> Optional[int]:
        return self._token_id(self.pad_token)

    @property
    def cls_token_id(self) -> Optional[int]:
        return self._token_id(self.cls_token)

    @property
    def mask_token_id(self) -> Optional[int]:
        return self._token_id(self.mask_token)

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return dict(self._added_encoder)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._added.items()))

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

    def add_tokens(self, new_tokens: Union[TokenLike, Sequence[TokenLike]], special_tokens: bool = False) -> int:
        """Add tokens that are matched whole in the raw text, before Moses and BPE, as transformers does.

        A string becomes a normalised (lowercased with the text) token, or a special one when it is a
        special token or `special_tokens` is set; an `AddedToken` (ours or the `tokenizers` one)
        keeps its options. A token outside the vocabulary gets the next id. Returns how many ids
        are new: give the model `resize_token_embeddings(len(tokenizer))`.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        tokens: list[Union[str, AddedToken]] = []
        for given in new_tokens:  # all checked before any is added
            if isinstance(given, str):
                if given:
                    tokens.append(given)
            elif all(hasattr(given, f) for f in AddedToken.__dataclass_fields__):
                token = AddedToken(**{f: getattr(given, f) for f in AddedToken.__dataclass_fields__})
                if not isinstance(token.content, str):
                    raise TypeError(f"added token content must be a str, got {type(token.content).__name__}")
                token.special = bool(token.special or special_tokens)
                if token.content:
                    tokens.append(token)
            else:
                raise TypeError(f"token {given!r} is a {type(given).__name__}, not a str or an AddedToken")
        vocab = self.get_vocab()
        next_id = len(vocab)
        added = 0
        for token in tokens:
            if isinstance(token, str):
                if token in self._added_encoder:  # a string leaves an added token as it is
                    continue
                special = special_tokens or token in self.all_special_tokens
                token = AddedToken(token, special=special, normalized=not special)
            if not token.special and token.normalized and self.do_lower_case:
                token.content = token.content.lower()
            if token.content in vocab:
                index = vocab[token.content]
            else:
                index = vocab[token.content] = next_id + added
                added += 1
            if token.special and token.content not in self.all_special_tokens:
                self.additional_special_tokens.append(token.content)
            self._added[index] = token
            self._added_encoder[token.content] = index
        self._rebuild()
        return added

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Union[TokenLike, Sequence[TokenLike]]],
        replace_additional_special_tokens: bool = True,
    ) -> int:
        """Set special tokens ({"pad_token": "[PAD]", "additional_special_tokens": [...]}) and add
        the ones the vocabulary lacks, as transformers does. Returns how many ids are new."""
        if not special_tokens_dict:
            return 0
        given: dict[str, Any] = {}
        for key, value in special_tokens_dict.items():  # all checked before any is set
            if key not in SPECIAL_TOKENS_ATTRIBUTES:
                expected = ", ".join(SPECIAL_TOKENS_ATTRIBUTES)
                raise ValueError(f"{key!r} is not a special token; expected one of {expected}")
            if key != "additional_special_tokens":
                given[key] = _special_token(value, key)
            elif isinstance(value, (list, tuple)):
                given[key] = [_special_token(t, key) for t in value]
            else:
                raise ValueError(f"additional_special_tokens must be a list of tokens, got {type(value).__name__}")
        tokens: list[TokenLike] = []
        for key, value in given.items():
            if key == "additional_special_tokens":
                contents = [str(_token_content(t)) for t in value]
                if not replace_additional_special_tokens:
                    keep = [i for i, c in enumerate(contents) if c not in self.additional_special_tokens]
                    value, contents = [value[i] for i in keep], [contents[i] for i in keep]
                if replace_additional_special_tokens and contents:
                    self.additional_special_tokens = contents
                else:
                    self.additional_special_tokens.extend(contents)
                tokens += value
            else:
                setattr(self, key, _token_content(value))
                if value not in tokens:
                    tokens.append(value)
        return self.add_tokens(tokens, special_tokens=True)

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

    # --- encoding ---------------------------------------------------------------------------

    def _strategies(
        self, padding: Any, truncation: Any, max_length: Optional[int], pad_to_multiple_of: Optional[int]
    ) -> tuple[str, str, Optional[int]]:
        """transformers' rules for padding / truncation / max_length defaults."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        padding = getattr(padding, "value", padding)
        truncation = getattr(truncation, "value", truncation)
        if padding is True:
            padding = "longest"
        elif padding is False or padding is None:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"unknown padding {padding!r}; use True/'longest', 'max_length' or False")
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation is None:
            truncation = "do_not_truncate"
        if truncation not in ("longest_first", "only_first", "only_second", "do_not_truncate"):
            raise ValueError(
                f"unknown truncation {truncation!r}; use True/'longest_first', 'only_first', 'only_second' or False"
            )
        if max_length is None:
            limited = self.model_max_length <= _LARGE_INTEGER
            if padding == "max_length":
                if limited:
                    max_length = self.model_max_length
                else:
                    padding = "do_not_pad"
            if truncation != "do_not_truncate":
                if limited:
                    max_length = self.model_max_length
                else:
                    truncation = "do_not_truncate"
        if padding != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None or self.pad_token_id < 0):
            raise ValueError("asked to pad, but the tokenizer has no pad_token")
        if (
            truncation != "do_not_truncate"
            and padding != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                f"truncation length {max_length} is not a multiple of pad_to_multiple_of {pad_to_multiple_of}"
            )
        return padding, truncation, max_length

    def _truncate(
        self, ids: list[int], pair_ids: Optional[list[int]], remove: int, strategy: str
    ) -> tuple[list[int], Optional[list[int]]]:
        """Drop `remove` tokens as transformers' `truncate_sequences` does."""
        if remove <= 0:
            return ids, pair_ids
        right = self.truncation_side == "right"
        if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None):
            if len(ids) > remove:
                ids = ids[:-remove] if right else ids[remove:]
            # else: transformers logs an error and leaves the ids as they are
        elif strategy == "longest_first":
            len_ids, len_pair = len(ids), len(pair_ids)
            first_remove = min(abs(len_pair - len_ids), remove)
            second_remove = remove - first_remove
            if len_ids > len_pair:
                ids_cut = first_remove + second_remove // 2
                pair_cut = second_remove - second_remove // 2
            else:
                ids_cut = second_remove // 2
                pair_cut = first_remove + second_remove - second_remove // 2
            if right:
                ids = ids[:-ids_cut] if ids_cut > 0 else ids
                pair_ids = pair_ids[:-pair_cut] if pair_cut > 0 else pair_ids
            else:
                ids, pair_ids = ids[ids_cut:], pair_ids[pair_cut:]
        elif strategy == "only_second" and pair_ids is not None:
            if len(pair_ids) > remove:
                pair_ids = pair_ids[:-remove] if right else pair_ids[remove:]
        return ids, pair_ids

    def _prepare(
        self,
        ids: list[int],
        pair_ids: Optional[list[int]],
        add_special_tokens: bool,
        truncation: str,
        max_length: Optional[int],
        return_token_type_ids: bool,
        return_special_tokens_mask: bool,
        langs: Optional[tuple[int, int]],
        return_length: bool = False,
    ) -> dict[str, Any]:
        pair = pair_ids is not None
        total = len(ids) + (len(pair_ids) if pair else 0) + (self.num_special_tokens_to_add(pair) if add_special_tokens else 0)
        if truncation != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids = self._truncate(ids, pair_ids, total - max_length, truncation)
        if add_special_tokens:
            sequence = self.build_inputs_with_special_tokens(ids, pair_ids)
            first_len = len(ids) + 2
        else:
            sequence = ids + pair_ids if pair else list(ids)
            first_len = len(ids)
        out = {"input_ids": sequence}
        if return_token_type_ids:
            if add_special_tokens:
                out["token_type_ids"] = self.create_token_type_ids_from_sequences(ids, pair_ids)
            else:
                out["token_type_ids"] = [0] * len(sequence)
        if return_special_tokens_mask:
            if add_special_tokens:
                out["special_tokens_mask"] = self.get_special_tokens_mask(ids, pair_ids)
            else:
                out["special_tokens_mask"] = [0] * len(sequence)
        if return_length:  # before padding, as transformers does for batches
            out["length"] = len(sequence)
        if langs is not None:
            out["langs"] = [langs[0]] * first_len + [langs[1]] * (len(sequence) - first_len)
        return out

    def _pad_one(
        self,
        encoded: dict[str, list[int]],
        padding: str,
        max_length: Optional[int],
        pad_to_multiple_of: Optional[int],
        padding_side: str,
        return_attention_mask: bool,
    ) -> dict[str, list[int]]:
        length = len(encoded["input_ids"])
        if padding == "longest":
            max_length = length
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded:
            encoded["attention_mask"] = [1] * length
        missing = (max_length - length) if (padding != "do_not_pad" and max_length is not None) else 0
        if missing <= 0:
            return encoded
        fills = {
            "input_ids": self.pad_token_id,
            "token_type_ids": self.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
        }
        for key, value in encoded.items():
            # as transformers: other keys ("length", labels) are left alone; 0 is a real label
            if not isinstance(value, list) or key not in _PADDED_KEYS:
                continue
            fill = fills.get(key, value[-1] if key == "langs" and value else 0)
            encoded[key] = value + [fill] * missing if padding_side == "right" else [fill] * missing + value
        return encoded

    def pad(
        self,
        encoded_inputs: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
        padding: Union[bool, str] = True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_attention_mask: Optional[bool] = None,
        return_tensors: Optional[str] = None,
    ) -> BatchEncoding:
        """Pad a batch (a dict of lists of lists, or a list of dicts) to one length."""
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs:
                return BatchEncoding()
            encoded_inputs = {k: [e[k] for e in encoded_inputs] for k in encoded_inputs[0]}
        batch = {k: [_to_list(row) for row in v] for k, v in encoded_inputs.items()}
        if "input_ids" not in batch:
            raise ValueError(f"pad needs 'input_ids'; got keys {list(batch)}")
        if return_attention_mask is None:
            return_attention_mask = True
        padding, _, max_length = self._strategies(padding, False, max_length, pad_to_multiple_of)
        out = self._pad_batch(batch, padding, max_length, pad_to_multiple_of, padding_side or self.padding_side,
                              return_attention_mask)
        return BatchEncoding(out).convert_to_tensors(return_tensors)

    def _pad_batch(
        self,
        batch: dict[str, list[list[int]]],
        padding: str,
        max_length: Optional[int],
        pad_to_multiple_of: Optional[int],
        padding_side: str,
        return_attention_mask: bool,
    ) -> dict[str, list[list[int]]]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        if padding == "longest":
            max_length = max((len(r["input_ids"]) for r in rows), default=0)
            padding = "max_length"
        rows = [
            self._pad_one(r, padding, max_length, pad_to_multiple_of, padding_side, return_attention_mask) for r in rows
        ]
        keys = list(rows[0]) if rows else list(batch) + (["attention_mask"] if return_attention_mask else [])
        return {k: [r[k] for r in rows] for k in keys}

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
        if return_overflowing_tokens or stride:
            raise NotImplementedError("return_overflowing_tokens / stride are not supported by xlm.XLMTokenizer")
        if return_offsets_mapping:
            raise NotImplementedError("return_offsets_mapping needs a fast tokenizer; XLM has none")
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
        from .hub import resolve_file

        hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                   token=token, subfolder=subfolder)
        vocab_file = resolve_file(name_or_path, VOCAB_FILES_NAMES["vocab_file"], **hub)
        merges_file = resolve_file(name_or_path, VOCAB_FILES_NAMES["merges_file"], **hub)
        config_file = resolve_file(name_or_path, TOKENIZER_CONFIG_FILE, required=False, **hub)
        map_file = resolve_file(name_or_path, SPECIAL_TOKENS_MAP_FILE, required=False, **hub)
        config: dict[str, Any] = {}
        if config_file is not None:
            with open(config_file, encoding="utf-8") as handle:
                config = json.load(handle)
            saved_class = config.get("tokenizer_class")
            if saved_class not in (None, "XLMTokenizer"):
                raise ValueError(f"{config_file} is for a {saved_class}, not an XLMTokenizer")
        if map_file is not None:
            with open(map_file, encoding="utf-8") as handle:
                for key, value in json.load(handle).items():
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
        return state

    def __repr__(self) -> str:
        return (
            f"XLMTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"merges={len(self.bpe_ranks)}, languages={None if self.lang2id is None else sorted(self.lang2id)}, "
            f"lowercase_and_remove_accent={self.do_lowercase_and_remove_accent})"
        )


def _to_list(value: Any) -> Any:
    """Plain Python lists / ints from numpy arrays and framework tensors."""
    if hasattr(value, "numpy") and not hasattr(value, "tolist"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
