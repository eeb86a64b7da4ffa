"""token-classification ("ner"): a label per token, or entity groups with character spans, as transformers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xlm.pipelines.base import Features, Pipeline, PipelineStats, require_head, softmax

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    """Entities of each text, with transformers' token-classification rules.

    `aggregation_strategy`: "none" (one {"entity", "score", "index", "word", "start", "end"} per
    token), "simple" (adjacent tokens of one B-/I- tag grouped into {"entity_group", "score",
    "word", "start", "end"}), or "first" / "average" / "max" (tokens of one word first agree on a
    label: the first token's, the average scores', the most confident token's; then grouped).
    `start` / `end` are character offsets into the text, from the tokenizer's
    `return_offsets_mapping` (or an `offset_mapping` passed in, as transformers takes it); a word
    continues (`is_subword`) where a token starts with no space before it, transformers' rule for
    tokenizers whose vocabulary marks word ends rather than continuations. Without offsets, start and
    end are None and only "none" / "simple" work, as with transformers' slow tokenizers.
    Labels in `ignore_labels` (default ["O"]) are dropped.
    """

    task = "token-classification"

    def __init__(self, model: Any, tokenizer: Any, aggregation_strategy: str = "none",
                 ignore_labels: Sequence[str] | None = None, **kwargs: Any) -> None:
        require_head(model, self.task, "XLMForTokenClassification")
        self.aggregation_strategy = self._strategy(aggregation_strategy)
        self.ignore_labels = ignore_labels
        super().__init__(model, tokenizer, **kwargs)

    @staticmethod
    def _strategy(name: Any) -> str:
        name = str(getattr(name, "value", name)).lower()
        if name not in AGGREGATION_STRATEGIES:
            raise ValueError(f"aggregation_strategy must be one of {AGGREGATION_STRATEGIES}, got {name!r}")
        return name

    def __call__(
        self,
        inputs: str | Sequence[str],
        lang: str | Sequence[str] | None = None,
        aggregation_strategy: str | None = None,
        ignore_labels: Sequence[str] | None = None,
        offset_mapping: Sequence[tuple[int, int]] | None = None,
        batch_size: int | None = None,
    ) -> list:
        """Entities of one text (a list) or of each of a list of texts (a list of lists)."""
        strategy = self.aggregation_strategy if aggregation_strategy is None else self._strategy(aggregation_strategy)
        ignore = ignore_labels if ignore_labels is not None else (self.ignore_labels or ["O"])
        texts, single = self._texts(inputs)
        if offset_mapping is not None and not single:
            raise ValueError("offset_mapping is for one text; a list of texts takes the tokenizer's offsets")
        stats = PipelineStats(sentences=len(texts))
        start = time.perf_counter()
        langs = self._normalise_langs(len(texts), lang)
        lang_ids = self._lang_ids(langs)
        if not texts:
            self.stats = stats
            return []
        try:
            columns = self._encode(texts, langs, offsets=offset_mapping is None, special_mask=True)
            offsets = columns.get("offset_mapping") if offset_mapping is None else [list(map(tuple, offset_mapping))]
        except NotImplementedError:  # a tokenizer without offsets
            columns = self._encode(texts, langs, special_mask=True)
            offsets = None
        if offsets is None and strategy in ("first", "average", "max"):
            raise ValueError(
                f'aggregation_strategy="{strategy}" needs character offsets, which this tokenizer does not give; '
                'use "simple" or pass offset_mapping='
            )
        ids = columns["input_ids"]
        self._check_length(ids)
        if offsets is not None and len(offsets[0]) != len(ids[0]):
            raise ValueError(f"offset_mapping has {len(offsets[0])} spans for {len(ids[0])} tokens")
        stats.tokenize_seconds = time.perf_counter() - start
        features = Features(ids, columns.get("token_type_ids"), lang_ids, list(range(len(ids))))
        logits = self._execute(features, stats, start, batch_size)
        results = []
        for i, text in enumerate(texts):
            scores = softmax(logits[i])
            pre = self._pre_entities(text, ids[i], scores, None if offsets is None else offsets[i],
                                     columns["special_tokens_mask"][i])
            entities = self._aggregate(pre, strategy)
            results.append([e for e in entities if e.get("entity", e.get("entity_group")) not in ignore])
        self.stats.total_seconds = time.perf_counter() - start
        return results[0] if single else results

    def _process(self, batch, rows, ids, results, **options) -> None:
        logits = self._runner.outputs(batch, ["logits"])["logits"]
        for r, i in enumerate(rows):
            results[i] = logits[r, : len(ids[i])]

    def _pre_entities(self, text: str, ids: list[int], scores: np.ndarray, offsets: Any, special: list[int]) -> list[dict]:
        unk = getattr(self.tokenizer, "unk_token_id", None)
        pre = []
        for index, token_scores in enumerate(scores):
            if special[index]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(ids[index]))
            if offsets is not None:
                start, end = (int(x) for x in offsets[index])
                is_subword = start > 0 and " " not in text[start - 1 : start + 1]
                if int(ids[index]) == unk:
                    word, is_subword = text[start:end], False
            else:
                start = end = None
                is_subword = False
            pre.append({"word": word, "scores": token_scores, "start": start, "end": end, "index": index,
                        "is_subword": is_subword})
        return pre

    def _aggregate(self, pre: list[dict], strategy: str) -> list[dict]:
        id2label = self.config.id2label
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append({"entity": id2label[best], "score": float(p["scores"][best]), "index": p["index"],
                                 "word": p["word"], "start": p["start"], "end": p["end"]})
        else:
            entities, group = [], None
            for p in pre:
                if group is None:
                    group = [p]
                elif p["is_subword"]:
                    group.append(p)
                else:
                    entities.append(self._aggregate_word(group, strategy))
                    group = [p]
            if group is not None:
                entities.append(self._aggregate_word(group, strategy))
        return entities if strategy == "none" else self._group(entities)

    def _aggregate_word(self, tokens: list[dict], strategy: str) -> dict:
        id2label = self.config.id2label
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda t: t["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([t["scores"] for t in tokens]), axis=0)
        best = int(scores.argmax())
        return {"entity": id2label[best], "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in tokens]),
                "start": tokens[0]["start"], "end": tokens[-1]["end"]}

    def _group(self, entities: list[dict]) -> list[dict]:
        """Adjacent entities of one tag, B- starting a new group (transformers' group_entities)."""
        groups, current = [], []
        for entity in entities:
            if current:
                bi, tag = _tag(entity["entity"])
                _, last_tag = _tag(current[-1]["entity"])
                if not (tag == last_tag and bi != "B"):
                    groups.append(self._group_one(current))
                    current = []
            current.append(entity)
        if current:
            groups.append(self._group_one(current))
        return groups

    def _group_one(self, entities: list[dict]) -> dict:
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.nanmean([e["score"] for e in entities])),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }


def _tag(name: str) -> tuple[str, str]:
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name
