"""The Moses punctuation normaliser and tokenizer of sacremoses, with the regexes that cannot match a
text skipped; each fast path checks itself against sacremoses once per language before it is used."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Optional, Union

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
