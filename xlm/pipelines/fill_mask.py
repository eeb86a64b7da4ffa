"""fill-mask: the top-k tokens and their probabilities at each mask token, as transformers' pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xlm.pipelines.base import Pipeline


class FillMaskPipeline(Pipeline):
    """Top-k tokens and their probabilities for each mask token of each sentence.

    Results follow transformers' fill-mask pipeline: per input, a list of `top_k` dicts
    {"score", "token", "token_str", "sequence"} when it holds one mask, a list of such lists (one
    per mask, left to right) when it holds several. Needs an LM-head model.
    """

    task = "fill-mask"

    def __init__(self, model: Any, tokenizer: Any, top_k: int = 5, targets: Any = None, **kwargs: Any) -> None:
        self.top_k = top_k
        self.targets = targets
        super().__init__(model, tokenizer, **kwargs)
        mask = getattr(tokenizer, "mask_token_id", None)
        self.mask_id = int(mask if mask is not None else self.config.mask_index)
        self.mask_token = getattr(tokenizer, "mask_token", None) or f"id {self.mask_id}"

    def __call__(
        self,
        inputs: str | Sequence[str],
        lang: str | Sequence[str] | None = None,
        top_k: int | None = None,
        targets: str | Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> list:
        """Predictions for one text or for a list of texts (input order). `targets` limits the
        candidates to those tokens (a word not in the vocabulary stands for its first token, as in
        transformers); scores stay probabilities over the whole vocabulary."""
        top_k = self.top_k if top_k is None else top_k
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        targets = self.targets if targets is None else targets
        target_ids = None if targets is None else self._target_ids(targets)
        return self._run(inputs, lang, batch_size, top_k=top_k, target_ids=target_ids)

    def _target_ids(self, targets: str | Sequence[str]) -> np.ndarray:
        """transformers' get_target_ids: vocabulary entries as they are, other words by their first token."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                tokens = self.tokenizer(target, add_special_tokens=False)["input_ids"]
                if not tokens:
                    continue
                id_ = tokens[0]
            ids.append(int(id_))
        ids = list(set(ids))
        if not ids:
            raise ValueError(f"none of the targets {targets!r} gives a token; at least one must")
        return np.array(ids)

    def fill_mask(self, text: str | Sequence[str], lang: str | Sequence[str] | None = None, top_k: int = 5) -> list:
        """The `top_k` most likely tokens at each mask of `text` (see the class docstring)."""
        return self(text, lang=lang, top_k=top_k)

    def _check_inputs(self, ids: list[list[int]]) -> None:
        for i, seq in enumerate(ids):
            if self.mask_id not in seq:
                raise ValueError(f"input {i} holds no mask token ({self.mask_token}); fill-mask needs at least one")

    def _process(self, batch, rows, ids, results, top_k=5, target_ids=None) -> None:
        positions = np.argwhere(batch["input_ids"] == self.mask_id)  # (n, 2): row, position; row-major
        logits = self._runner(batch, gather=positions)
        logits = logits - logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=-1, keepdims=True)
        if target_ids is not None:
            probs = probs[:, target_ids]
        top_k = min(top_k, probs.shape[-1])
        top = np.argpartition(-probs, top_k - 1, axis=-1)[:, :top_k]
        top_probs = np.take_along_axis(probs, top, axis=-1)
        order = np.argsort(-top_probs, axis=-1, kind="stable")
        top, top_probs = np.take_along_axis(top, order, -1), np.take_along_axis(top_probs, order, -1)
        if target_ids is not None:
            top = target_ids[top]
        per_row: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for (row, pos), token_ids, scores in zip(positions, top, top_probs):
            per_row.setdefault(int(row), []).append((int(pos), token_ids, scores))
        decode = self.tokenizer.decode
        for r, i in enumerate(rows):
            masks = per_row[r]
            single = len(masks) == 1
            seq = np.asarray(ids[i])
            answers = []
            for pos, token_ids, scores in masks:
                row = []
                for token, score in zip(token_ids.tolist(), scores.tolist()):
                    filled = seq.copy()
                    filled[pos] = token
                    row.append(
                        {
                            "score": score,
                            "token": token,
                            "token_str": decode([token]),
                            "sequence": decode(filled.tolist(), skip_special_tokens=single),
                        }
                    )
                answers.append(row)
            results[i] = answers[0] if single else answers
