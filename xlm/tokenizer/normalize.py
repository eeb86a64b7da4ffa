"""Text normalisation of XLM's preprocessing: unicode punctuation, non-printing characters, Romanian
WMT16 rules, lowercasing and accent removal (ports of the Moses and XLM scripts, same results)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

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
