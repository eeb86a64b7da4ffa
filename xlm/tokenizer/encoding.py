"""The tokenizer's small containers: `AddedToken` and `BatchEncoding` (with tensor conversion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from xlm.tokenizer.alignment import AlignmentMethods

# what `pad` pads (transformers' model inputs, plus our langs); other keys such as labels are left as given
_PADDED_KEYS = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "langs")


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


class BatchEncoding(AlignmentMethods, dict):
    """The tokenizer's output: a dict of lists (or tensors) whose keys are also attributes.

    With `return_offsets_mapping=True` it also has transformers' fast-tokenizer look-ups
    (`word_ids()`, `sequence_ids()`, `token_to_chars()`, `char_to_token()`, ...).
    """

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


def _to_list(value: Any) -> Any:
    """Plain Python lists / ints from numpy arrays and framework tensors."""
    if hasattr(value, "numpy") and not hasattr(value, "tolist"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
