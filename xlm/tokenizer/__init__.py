"""XLM's tokenizer: Moses pre-tokenisation per language, then BPE with `</w>` word ends.

`XLMTokenizer` is the public class; the parts it is made of, by module:

- `xlm_tokenizer`: `XLMTokenizer` itself: vocabulary, BPE, `tokenize`, `__call__` / `encode`,
  `decode`, `save_pretrained` / `from_pretrained` / `push_to_hub`; `long_words`: BPE of words over
  64 symbols in O(n log n), the same pieces as the rank-by-rank loop.
- `normalize`: text normalisation (unicode punctuation, non-printing characters, Romanian, lowercasing
  and accent removal).
- `moses`: sacremoses' punctuation normaliser and tokenizer, with a fast path checked against them.
- `original`: the original facebookresearch/XLM scripts' order (`preprocessing="original_xlm"`);
  `perl_unicode`: the Perl character classes its Moses tokenizer uses.
- `languages`: text to words per language (Moses, or the Chinese / Thai / Japanese segmenters);
  `pre_tokenize`.
- `special_tokens`: special-token attributes, `add_tokens`, `add_special_tokens`.
- `padding`: truncation and padding rules.
- `encoding`: `AddedToken`, `BatchEncoding` and tensor conversion.
- `offsets`: character offsets of tokens in the original text (`return_offsets_mapping`) and
  overflowing windows (`return_overflowing_tokens`, `stride`); `alignment`: `word_ids()`,
  `char_to_token()` and the other look-ups of a `BatchEncoding` that has them.
- `files`: file names, reading `vocab.json` / `merges.txt`, atomic writes.
"""

from xlm.tokenizer.encoding import AddedToken, BatchEncoding
from xlm.tokenizer.files import VOCAB_FILES_NAMES, read_merges
from xlm.tokenizer.languages import CUSTOM_SEGMENTER_LANGUAGES, pre_tokenize
from xlm.tokenizer.normalize import (
    lowercase_and_remove_accent,
    remove_non_printing_char,
    replace_unicode_punct,
    romanian_preprocessing,
)
from xlm.tokenizer.original import PREPROCESSING_MODES, original_xlm_words
from xlm.tokenizer.special_tokens import DEFAULT_SPECIAL_TOKENS
from xlm.tokenizer.xlm_tokenizer import XLMTokenizer

__all__ = [
    "XLMTokenizer",
    "BatchEncoding",
    "AddedToken",
    "VOCAB_FILES_NAMES",
    "DEFAULT_SPECIAL_TOKENS",
    "CUSTOM_SEGMENTER_LANGUAGES",
    "pre_tokenize",
    "original_xlm_words",
    "PREPROCESSING_MODES",
    "lowercase_and_remove_accent",
    "replace_unicode_punct",
    "remove_non_printing_char",
    "romanian_preprocessing",
    "read_merges",
]
