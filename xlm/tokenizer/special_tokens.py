"""Special and added tokens: the attributes transformers' tokenizers have (`bos_token`, `mask_token_id`,
`all_special_ids`, ...) and `add_tokens` / `add_special_tokens`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from xlm.tokenizer.encoding import AddedToken

#: The original XLM dictionary starts with these, at ids 0..13 (`<special1>` is the mask).
DEFAULT_SPECIAL_TOKENS = ("<s>", "</s>", "<pad>", "<unk>") + tuple(f"<special{i}>" for i in range(10))
DEFAULT_ADDITIONAL_SPECIAL_TOKENS = tuple(f"<special{i}>" for i in range(10))

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

TokenLike = Union[str, "AddedToken"]


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


class SpecialTokensMixin:
    """Special-token attributes and adding tokens, for `XLMTokenizer`.

    Uses the tokenizer's `_token_to_id`, `_unk_id`, `_added`, `_added_encoder`, `get_vocab()`,
    `do_lower_case` and `_rebuild()`.
    """


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
