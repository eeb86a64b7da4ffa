"""The original facebookresearch/XLM preprocessing, for `XLMTokenizer(preprocessing="original_xlm")`.

XLM's models were trained on text prepared by its `tools/tokenize.sh` and `lowercase_and_remove_accent.py`
and then fastBPE's `applybpe`, one line at a time:

1. `replace-unicode-punctuation.perl`, then `normalize-punctuation.perl -l LANG` (Moses scripts,
   reproduced here rule for rule, byte semantics included: `\\d` is an ASCII digit, and the line still
   ends in its newline, so `."` at the end of a line becomes `".` outside English and Czech);
2. `remove-non-printing-char.perl`: every character of category C* becomes a SPACE (transformers
   deletes them, so a soft hyphen or zero-width space no longer joins the word around it);
3. Romanian only: Sennrich's WMT16 normalisation (`get-data-nmt.sh` does it before Moses);
4. `tokenizer.perl -l LANG -no-escape` on the text as written (sacremoses' port, plus the rule of
   tokenizer.perl since November 2018 that a line's last word always loses its final dot);
   Chinese, Thai and Japanese are segmented instead (see below);
5. when the model is lowercased: `lowercase_and_remove_accent.py` on the TOKENS, so Moses saw the
   original case ("Click OK. The" -> `ok .`; transformers lowercases first and gets `ok.`);
6. BPE: fastBPE applies the merges in the order of the codes file, which is what `XLMTokenizer.bpe`
   does with merges.txt.

Text holding several lines (``\\n``) is tokenized line by line, as the scripts read files. Chinese was
segmented with the Stanford segmenter (pku model) BEFORE step 1; it is Java and not available here, so
rjieba takes its place (its words may differ). Thai: steps 1-2, then PyThaiNLP's `word_tokenize`
(XLM's `segment_th.py`); Japanese: steps 1-2, then KyTea, as the original.

The Moses tokenizer is sacremoses' port with tokenizer.perl's character classes (Perl's Unicode
tables, `perl_unicode.py`; sacremoses' own lack Han, Hangul, Devanagari viramas and more), its
language rules that sacremoses lacks (fi/sv colons, ca middle dot, ga/ca/so/tdt apostrophes) and its
last-word rule. What remains different: a text holding the literal words DOTMULTI / DOTDOTMULTI, and
the script versions: these are mosesdecoder's master (before late 2019, normalize-punctuation turned
`‘` and `‚` into `"`, and replace-unicode-punctuation turned `１` into `"`).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional

from xlm.tokenizer.languages import CUSTOM_SEGMENTER_LANGUAGES, _pipeline
from xlm.tokenizer.moses import _FastMosesTokenizer, _import_sacremoses, _self_checked, _Substitution
from xlm.tokenizer.normalize import _UNICODE_PUNCT_TABLE, _strip_accents, romanian_preprocessing

#: `XLMTokenizer(preprocessing=...)`: transformers' order (lowercase first, control characters
#: deleted), or the original XLM scripts' order.
TRANSFORMERS = "transformers"
ORIGINAL_XLM = "original_xlm"
PREPROCESSING_MODES = (TRANSFORMERS, ORIGINAL_XLM)


def check_preprocessing(preprocessing: Any) -> str:
    """`preprocessing` if it names a mode, else ValueError listing the modes."""
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"preprocessing must be one of {list(PREPROCESSING_MODES)}, got {preprocessing!r}")
    return preprocessing


# --- replace-unicode-punctuation.perl ----------------------------------------------------------
# The same table as transformers', but the two full stops swallow only ASCII spaces (`s/。 */. /g`).
_IDEOGRAPHIC_FULL_STOP = re.compile("。 *")
_FULLWIDTH_FULL_STOP = re.compile("． *")


def replace_unicode_punctuation(line: str) -> str:
    """Moses `replace-unicode-punctuation.perl` on one line."""
    if line.isascii():
        return line
    line = line.translate(_UNICODE_PUNCT_TABLE)
    if "。" in line:
        line = _IDEOGRAPHIC_FULL_STOP.sub(". ", line)
    if "．" in line:
        line = _FULLWIDTH_FULL_STOP.sub(". ", line)
    return line


# --- normalize-punctuation.perl ----------------------------------------------------------------
# Rule for rule, in the script's order. The script reads bytes (no `use utf8`): `\d` and `[a-z]`
# with /i match ASCII only. "\u00a0" is the no-break space the script writes as raw bytes.
_NBSP = "\u00a0"
_COMMON_RULES: tuple[tuple[str, str], ...] = (
    (r"\r", ""),
    # remove extra spaces
    (r"\(", " ("),
    (r"\)", ") "),
    (r" +", " "),
    (r"\) ([.!:?;,])", r")\1"),
    (r"\( ", "("),
    (r" \)", ")"),
    (r"([0-9]) %", r"\1%"),
    (r" :", ":"),
    (r" ;", ";"),
    # not -penn
    (r"`", "'"),
    (r"''", ' " '),
    # normalize unicode punctuation
    ("„", '"'),
    ("“", '"'),
    ("”", '"'),
    ("–", "-"),
    ("—", " - "),
    (r" +", " "),
    ("´", "'"),
    ("([a-zA-Z])‘([a-zA-Z])", r"\1'\2"),
    ("([a-zA-Z])’([a-zA-Z])", r"\1'\2"),
    ("‘", "'"),
    ("‚", "'"),
    ("’", '"'),
    ("''", '"'),
    ("´´", '"'),
    ("…", "..."),
    # French quotes
    (f"{_NBSP}«{_NBSP}", ' "'),
    (f"«{_NBSP}", '"'),
    ("«", '"'),
    (f"{_NBSP}»{_NBSP}", '" '),
    (f"{_NBSP}»", '"'),
    ("»", '"'),
    # handle pseudo-spaces
    (f"{_NBSP}%", "%"),
    (f"nº{_NBSP}", "nº "),
    (f"{_NBSP}:", ":"),
    (f"{_NBSP}ºC", " ºC"),
    (f"{_NBSP}cm", " cm"),
    (f"{_NBSP}\\?", "?"),
    (f"{_NBSP}!", "!"),
    (f"{_NBSP};", ";"),
    (f",{_NBSP}", ", "),
    (r" +", " "),
)
_ENGLISH_QUOTE_COMMA = ((r'"([,.]+)', r'\1"'),)
_OTHER_QUOTE_COMMA = ((r',"', '",'), (r'(\.+)"(\s*[^<])', r'"\1\2'))
_COMMA_DECIMAL_LANGUAGES = ("de", "es", "cz", "cs", "fr")


def _normalize_punctuation_rules(lang: str) -> tuple[tuple[str, str], ...]:
    if lang == "en":
        quotes = _ENGLISH_QUOTE_COMMA
    elif lang in ("cs", "cz"):
        quotes = ()
    else:  # every other language, not only de/es/fr as in sacremoses
        quotes = _OTHER_QUOTE_COMMA
    separator = "," if lang in _COMMA_DECIMAL_LANGUAGES else "."
    return _COMMON_RULES + quotes + ((f"([0-9]){_NBSP}([0-9])", rf"\1{separator}\2"),)


class _PunctuationNormalizer:
    """Moses `normalize-punctuation.perl -l LANG`, skipping rules whose literal text is absent."""

    def __init__(self, lang: str) -> None:
        self._substitutions = [_Substitution(p, r) for p, r in _normalize_punctuation_rules(lang)]

    def normalize(self, line: str) -> str:
        # The script sees the line with its newline: `(\.+)"(\s*[^<])` matches `."` at the end.
        text = line + "\n"
        for substitution in self._substitutions:
            text = substitution(text)
        return text[:-1]


def normalize_punctuation(line: str, lang: str = "en") -> str:
    """Moses `normalize-punctuation.perl -l LANG` on one line (no stripping)."""
    normalizer = _NORMALIZERS.get(lang)
    if normalizer is None:
        normalizer = _NORMALIZERS[lang] = _PunctuationNormalizer(lang)
    return normalizer.normalize(line)


_NORMALIZERS: dict[str, _PunctuationNormalizer] = {}


# --- remove-non-printing-char.perl -------------------------------------------------------------
_OTHER_CATEGORY_SPACE: dict[int, str] = {}  # ord -> " " for the C* characters seen so far
_CHECKED: set[str] = set()


def remove_non_printing_char(line: str) -> str:
    """Moses `remove-non-printing-char.perl`: each character of category C* becomes a space."""
    if line.isprintable():  # no C* character
        return line
    import unicodedata

    for char in set(line) - _CHECKED:
        if unicodedata.category(char)[0] == "C":
            _OTHER_CATEGORY_SPACE[ord(char)] = " "
        _CHECKED.add(char)
    return line.translate(_OTHER_CATEGORY_SPACE)


# --- tokenizer.perl ----------------------------------------------------------------------------


def _split_last_dot(text: str) -> str:
    """tokenizer.perl (since 2018-11): the last word loses its final dot whatever it is."""
    last = text[text.rfind(" ") + 1 :]
    if len(last) > 1 and last[-1] == ".":
        return text[:-1] + " ."
    return text


def _perl_class(name: str, bmp_only: bool = False) -> str:
    """The body of a regex character class matching what Perl's \\p{name} matches (in the basic
    multilingual plane only, with `bmp_only`: `re` tests such a class in one table look-up, but
    scans a class holding supplementary characters range by range, six times slower)."""
    from xlm.tokenizer.perl_unicode import RANGES

    parts = []
    for pair in "".join(RANGES[name]).split():
        start, end = (int(x, 16) for x in pair.split("-"))
        if bmp_only:
            if start > 0xFFFF:
                continue
            end = min(end, 0xFFFF)
        parts.append(f"\\U{start:08x}" if start == end else f"\\U{start:08x}-\\U{end:08x}")
    return "".join(parts)


def _perl_chars(name: str) -> str:
    from xlm.tokenizer.perl_unicode import RANGES

    ranges = [[int(x, 16) for x in pair.split("-")] for pair in "".join(RANGES[name]).split()]
    return "".join(chr(c) for start, end in ranges for c in range(start, end + 1))


@functools.lru_cache(maxsize=None)
def _perl_moses_class(bmp_only: bool = False) -> type:
    """sacremoses' MosesTokenizer with tokenizer.perl's character classes (Perl's Unicode tables;
    sacremoses' own lack Han, Hangul and Devanagari signs, among others) and its last-word rule."""
    sacremoses = _import_sacremoses()
    alnum, alpha, number = (_perl_class(name, bmp_only) for name in ("IsAlnum", "IsAlpha", "IsN"))
    not_alpha = re.compile(f"([^{alpha}])[']([^{alpha}])"), r"\1 ' \2"
    alpha_then_other = re.compile(f"([{alpha}])[']([^{alpha}])"), r"\1 ' \2"

    class PerlMosesTokenizer(sacremoses.MosesTokenizer):
        IsAlnum = _perl_chars("IsAlnum")
        IsAlpha = _perl_chars("IsAlpha")
        IsN = _perl_chars("IsN")
        IsLower = _perl_chars("IsLower")
        _alpha_set = frozenset(IsAlpha)
        _lower_set = frozenset(IsLower)
        # tokenizer.perl's rules, written as there.
        PAD_NOT_ISALNUM = re.compile(f"([^{alnum}\\s\\.'\\`\\,\\-])"), r" \1 "
        COMMA_SEPARATE_1 = re.compile(f"([^{number}])[,]"), r"\1 , "
        COMMA_SEPARATE_2 = re.compile(f"[,]([^{number}])"), r" , \1"
        COMMA_SEPARATE_3 = re.compile(f"([{number}])[,]$"), r"\1 ,"
        ENGLISH_SPECIFIC_APOSTROPHE = [
            not_alpha,
            (re.compile(f"([^{alpha}{number}])[']([{alpha}])"), r"\1 ' \2"),
            alpha_then_other,
            (re.compile(f"([{alpha}])[']([{alpha}])"), r"\1 '\2"),
            (re.compile(f"([{number}])[']([s])"), r"\1 '\2"),
        ]
        FR_IT_SPECIFIC_APOSTROPHE = [
            not_alpha,
            (re.compile(f"([^{alpha}])[']([{alpha}])"), r"\1 ' \2"),
            alpha_then_other,
            (re.compile(f"([{alpha}])[']([{alpha}])"), r"\1' \2"),
        ]

        def isanyalpha(self, text: str) -> bool:
            return not self._alpha_set.isdisjoint(text)

        def islower(self, text: str) -> bool:
            return self._lower_set.issuperset(text)

        def handles_nonbreaking_prefixes(self, text: str) -> str:
            return _split_last_dot(super().handles_nonbreaking_prefixes(text))

    return PerlMosesTokenizer


class _Chain:
    """Several substitutions where sacremoses (and the fast path) expect one (pattern, replacement)."""

    flags = 0
    pattern = None  # not a string: the fast path skips nothing for it

    def __init__(self, rules: list[tuple[str, str]]) -> None:
        self.rules = [(re.compile(p), r) for p, r in rules]

    def sub(self, _replacement: Any, text: str) -> str:
        for pattern, replacement in self.rules:
            text = pattern.sub(replacement, text)
        return text


def _perl_language_rules(lang: str, bmp_only: bool = False) -> tuple[Optional[list], Optional[list]]:
    """tokenizer.perl's rules that sacremoses lacks: (padding rules, apostrophe rules) or None."""
    alnum, alpha, lower = (_perl_class(name, bmp_only) for name in ("IsAlnum", "IsAlpha", "Ll"))
    pad = apostrophe = None
    # A colon (fi, sv) or apostrophe (tdt) inside a word stays when a lowercase letter follows.
    # Catalan's middle dot is never split off: the script lacks `use utf8`, so its `(·)(?=...)` rule
    # looks for two Latin-1 characters that decoded text never holds, and only the class keeps "·".
    if lang in ("fi", "sv", "tdt", "ca"):
        inner = {"fi": r"\:", "sv": r"\:", "tdt": "", "ca": "\u00b7"}[lang]
        pad = [(f"([^{alnum}\\s\\.{inner}\\'\\`\\,\\-])", r" \1 ")]
        if lang != "ca":
            mark = ":" if lang != "tdt" else "'"
            pad.append((f"({mark})(?=$|[^{lower}])", r" \1 "))
    split_left = [
        (f"([^{alpha}])[']([^{alpha}])", r"\1 ' \2"),
        (f"([^{alpha}])[']([{alpha}])", r"\1 ' \2"),
        (f"([{alpha}])[']([^{alpha}])", r"\1 ' \2"),
    ]
    if lang in ("ga", "ca"):  # contractions split as in French
        apostrophe = split_left + [(f"([{alpha}])[']([{alpha}])", r"\1' \2")]
    elif lang in ("so", "tdt"):  # glottal stops kept
        apostrophe = split_left
    return pad, apostrophe


def _perl_moses_tokenizer(lang: str, bmp_only: bool = False) -> Any:
    """The reference of the original mode's Moses tokenizer, for `lang` (for text without
    supplementary-plane characters only, with `bmp_only`)."""
    moses = _perl_moses_class(bmp_only)(lang=lang)
    pad, apostrophe = _perl_language_rules(lang, bmp_only)
    if pad is not None:
        moses.PAD_NOT_ISALNUM = (_Chain(pad), None)
    if apostrophe is not None:  # sacremoses applies its NON_SPECIFIC rule to these languages
        moses.NON_SPECIFIC_APOSTROPHE = (_Chain(apostrophe), None)
    return moses


class _FastPerlMosesTokenizer(_FastMosesTokenizer):
    """The fast Moses path with tokenizer.perl's last-word rule."""

    def _nonbreaking_prefixes(self, text: str) -> str:
        return _split_last_dot(super()._nonbreaking_prefixes(text))


# --- the pipeline ------------------------------------------------------------------------------


class _OriginalPipeline:
    """One language of the original preprocessing: a line to its words."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._normalize = _PunctuationNormalizer(lang).normalize
        # Moses words hold no spaces: lowercasing / accent stripping can be done (and cached) per word.
        self.space_free_words = lang not in CUSTOM_SEGMENTER_LANGUAGES
        self._tokenize = None
        if self.space_free_words:
            moses = _perl_moses_tokenizer(lang)
            moses_bmp = _perl_moses_tokenizer(lang, bmp_only=True)

            def reference(text: str) -> list[str]:
                return moses.tokenize(text, return_str=False, escape=False)

            name = f"Moses tokenizer ({lang}, original XLM)"
            self._tokenize_any = _self_checked(lambda: _FastPerlMosesTokenizer(moses).tokenize, reference, name)
            self._tokenize_bmp = _self_checked(lambda: _FastPerlMosesTokenizer(moses_bmp).tokenize, reference, name)
            self._tokenize = self._moses

    def _moses(self, text: str) -> list[str]:
        if text.isascii() or max(text) <= "\uffff":
            return self._tokenize_bmp(text)
        return self._tokenize_any(text)

    def clean(self, line: str) -> str:
        """tokenize.sh before the tokenizer: unicode punctuation, normalisation, non-printing characters."""
        return remove_non_printing_char(self._normalize(replace_unicode_punctuation(line)))

    def line_words(self, line: str, lowercase: bool) -> list[str]:
        """Words of one line; lowercased here only for the segmented languages (zh, th, ja)."""
        if self._tokenize is not None:
            text = self.clean(line)
            if self.lang == "ro":
                text = romanian_preprocessing(text)
            return self._tokenize(text)
        segmenters = _pipeline(self.lang)  # the segmenters of the transformers pipeline
        if self.lang == "zh":
            text = self.clean(" ".join(segmenters._segment_zh(line)))
        elif self.lang == "th":
            text = " ".join(segmenters._segment_th(self.clean(line)))
        else:
            text = " ".join(segmenters._segment_ja(self.clean(line)))
        if lowercase:  # lowercase_and_remove_accent.py on the line, then fastBPE splits on spaces
            text = _strip_accents(text.rstrip())
        return [w for w in text.split(" ") if w]

    def words(self, text: str, lowercase: bool) -> tuple[list[str], bool]:
        """Words of `text` (line by line), and whether they still need lowercasing per word."""
        if "\n" not in text:
            words = self.line_words(text, lowercase)
        else:
            words = [w for line in text.split("\n") for w in self.line_words(line, lowercase)]
        return words, lowercase and self.space_free_words


_PIPELINES: dict[str, _OriginalPipeline] = {}


def _original_pipeline(lang: str) -> _OriginalPipeline:
    pipeline = _PIPELINES.get(lang)
    if pipeline is None:
        pipeline = _PIPELINES[lang] = _OriginalPipeline(lang)
    return pipeline


def original_xlm_words(text: str, lang: str = "en", lowercase_and_strip_accents: bool = True) -> list[str]:
    """Words of `text` as the original XLM scripts give them to fastBPE (no special-token handling).

    Any language code is accepted: without Moses prefixes of its own it gets the English ones, as in
    tokenizer.perl.
    """
    words, strip = _original_pipeline(lang).words(text, lowercase_and_strip_accents)
    if strip:
        words = [_strip_accents(w) for w in words]
    return [w for w in words if w]


def _original_words(text: str, lang: str, lowercase: bool) -> tuple[list[str], bool]:
    """`XLMTokenizer._words` in the original mode (`lang` already checked)."""
    pipeline: Optional[_OriginalPipeline] = _PIPELINES.get(lang) or _original_pipeline(lang)
    return pipeline.words(text, lowercase)
