"""Text to words for one language, everything before lowercasing and BPE: Moses for most languages,
dedicated segmenters for Chinese, Thai and Japanese; `pre_tokenize` is the public entry."""

from __future__ import annotations

import functools
import os
from typing import Any

from xlm.tokenizer.moses import (
    _FastMosesTokenizer,
    _FastPunctNormalizer,
    _import_sacremoses,
    _self_checked,
)
from xlm.tokenizer.normalize import (
    _lower_each_char,
    _strip_accents,
    lowercase_and_remove_accent,
    remove_non_printing_char,
    replace_unicode_punct,
    romanian_preprocessing,
)

#: Languages segmented by a dedicated word segmenter instead of the Moses tokenizer.
CUSTOM_SEGMENTER_LANGUAGES = ("ja", "th", "zh")


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
