"""Batch makers for lists of tokenised examples, as transformers' `DefaultDataCollator` and
`DataCollatorWithPadding` (the collators `prepare_tf_dataset` uses); no framework needed for "np"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xlm.tokenizer.encoding import _tensor_converter

LABEL_ALIASES = ("label", "label_ids")  # renamed to "labels", the models' argument


def _labels_renamed(batch: dict[str, Any]) -> dict[str, Any]:
    for alias in LABEL_ALIASES:
        if alias in batch and "labels" not in batch:
            batch["labels"] = batch.pop(alias)
    return batch


class DefaultDataCollator:
    """Stack equal-length examples (dicts of ids, masks, labels) into one batch; `label` / `label_ids`
    become `labels`, and keys holding strings or None are left out.

    Args:
        return_tensors: "np", "pt" or "tf".
    """

    def __init__(self, return_tensors: str = "pt") -> None:
        self.return_tensors = return_tensors

    def __call__(self, features: Sequence[Mapping[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        if not features:
            raise ValueError("cannot collate an empty list of examples")
        batch = {}
        for key, value in features[0].items():
            if value is None or isinstance(value, str):
                continue
            rows = [np.asarray(f[key]) for f in features]
            shapes = {row.shape for row in rows}
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot stack {key!r}: its examples have the shapes {sorted(shapes)}; give a tokenizer "
                    "(DataCollatorWithPadding) to pad them"
                )
            batch[key] = np.stack(rows)
        convert = _tensor_converter(return_tensors or self.return_tensors)
        return {key: convert(value) for key, value in _labels_renamed(batch).items()}


class DataCollatorWithPadding:
    """Pad examples to the longest (or `max_length`) with the tokenizer's `pad`: ids, token types, attention
    masks and language ids; `label` / `label_ids` become `labels` (padding label lists is left to you, as
    transformers does).

    Args:
        tokenizer: an `XLMTokenizer` (or any tokenizer with transformers' `pad`).
        padding: True / "longest", "max_length" or False.
        max_length: the length for padding="max_length".
        pad_to_multiple_of: round the padded length up to a multiple of this.
        return_tensors: "np", "pt" or "tf".
    """

    def __init__(
        self,
        tokenizer: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str = "pt",
    ) -> None:
        self.tokenizer = tokenizer
        self.padding = padding
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.return_tensors = return_tensors

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        features = [dict(f) for f in features]
        batch = self.tokenizer.pad(
            features,
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors=self.return_tensors,
        )
        return _labels_renamed(dict(batch))
