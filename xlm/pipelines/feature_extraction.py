"""feature-extraction: the encoder's last hidden states of every sentence, shaped as transformers'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xlm.pipelines.base import Pipeline

POOLINGS = (None, "mean", "first")


class FeatureExtractionPipeline(Pipeline):
    """Hidden states of every sentence's real tokens (specials included), or one pooled vector.

    As transformers' pipeline, each input gives shape (1, tokens, hidden size): nested lists by
    default, a float32 numpy array with `return_tensors=True` (it indexes as the tensor does). Ours
    also pools: `pooling="mean"` (average over the real tokens) or `"first"` (the `<s>` token) give
    (1, hidden size). Head models give their encoder's last hidden states.
    """

    task = "feature-extraction"

    def __init__(
        self, model: Any, tokenizer: Any, pooling: str | None = None, return_tensors: bool = False, **kwargs: Any
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.return_tensors = return_tensors
        super().__init__(model, tokenizer, **kwargs)

    def __call__(
        self,
        inputs: str | Sequence[str],
        lang: str | Sequence[str] | None = None,
        pooling: str | None = None,
        return_tensors: bool | None = None,
        batch_size: int | None = None,
    ) -> Any:
        """Features of one text, or of a list of texts (a list, input order)."""
        pooling = self.pooling if pooling is None else pooling
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        tensors = self.return_tensors if return_tensors is None else return_tensors
        return self._run(inputs, lang, batch_size, pooling=pooling, return_tensors=tensors)

    def _process(self, batch, rows, ids, results, pooling=None, return_tensors=False) -> None:
        hidden = self._runner(batch)
        for r, i in enumerate(rows):
            states = hidden[r, : len(ids[i])]
            if pooling == "mean":
                states = states.mean(axis=0)
            elif pooling == "first":
                states = states[0]
            states = np.ascontiguousarray(states[None])
            results[i] = states if return_tensors else states.tolist()
