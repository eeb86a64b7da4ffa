"""text-classification and zero-shot-classification: sequence-classifier scores, as transformers' pipelines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xlm.pipelines.base import Features, Pipeline, PipelineStats, require_head, sigmoid, softmax

FUNCTIONS = ("default", "sigmoid", "softmax", "none")
_UNSET: Any = object()  # top_k not given: transformers' legacy one-best result


def _as_examples(inputs: Any) -> tuple[list[Any], bool]:
    """Texts or {"text", "text_pair"} dicts as tokenizer examples (a text or a (text, pair) tuple)."""
    single = isinstance(inputs, (str, dict))
    items = [inputs] if single else list(inputs)
    examples = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            examples.append(item)
        elif isinstance(item, dict) and set(item) <= {"text", "text_pair"} and isinstance(item.get("text"), str):
            pair = item.get("text_pair")
            examples.append(item["text"] if pair is None else (item["text"], pair))
        else:
            raise TypeError(
                f"input {i} must be a string or a {{'text': ..., 'text_pair': ...}} dict, got {type(item).__name__}"
            )
    return examples, single


class _SequenceClassifier(Pipeline):
    """A sequence classifier's logits for every feature row."""

    def _process(self, batch, rows, ids, results, **options) -> None:
        logits = self._runner.outputs(batch, ["logits"])["logits"]
        for r, i in enumerate(rows):
            results[i] = logits[r]

    def _logits(self, examples: list[Any], langs: list[str | None], batch_size: int | None, stats: PipelineStats,
                start: float, truncate: Any = None) -> np.ndarray:
        lang_ids = self._lang_ids(langs)
        columns = self._encode(examples, langs, truncate=truncate)
        ids = columns["input_ids"]
        self._check_length(ids)
        stats.tokenize_seconds = time.perf_counter() - start
        features = Features(ids, columns.get("token_type_ids"), lang_ids, list(range(len(ids))))
        return np.stack(self._execute(features, stats, start, batch_size))


class TextClassificationPipeline(_SequenceClassifier):
    """Labels and scores of each text (or text pair), as transformers' text-classification pipeline.

    `function_to_apply`: "default" (none for regression, sigmoid for multi-label or one label,
    softmax otherwise: from `config.problem_type` and `num_labels`), "sigmoid", "softmax" or "none".
    Without `top_k`, each input gives its best {"label", "score"} (one string in: a one-item list);
    with `top_k` (an int, or None for all labels) each input gives its `top_k` best, sorted.
    """

    task = "text-classification"

    def __init__(self, model: Any, tokenizer: Any, top_k: Any = _UNSET, function_to_apply: str | None = None,
                 **kwargs: Any) -> None:
        require_head(model, self.task, "XLMForSequenceClassification")
        self.top_k = top_k
        self.function_to_apply = function_to_apply
        super().__init__(model, tokenizer, **kwargs)

    def __call__(
        self,
        inputs: Any,
        lang: str | Sequence[str] | None = None,
        top_k: Any = _UNSET,
        function_to_apply: str | None = None,
        batch_size: int | None = None,
    ) -> list:
        """Classify one text or pair, or a list of them (input order)."""
        legacy_call = top_k is _UNSET
        top_k = self.top_k if top_k is _UNSET else top_k
        legacy = top_k is _UNSET
        if top_k is not _UNSET and top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None (all labels), got {top_k!r}")
        function = self._function(self.function_to_apply if function_to_apply is None else function_to_apply)
        examples, single = _as_examples(inputs)
        stats = PipelineStats(sentences=len(examples))
        start = time.perf_counter()
        langs = self._normalise_langs(len(examples), lang)
        if not examples:
            self.stats = stats
            return []
        logits = self._logits(examples, langs, batch_size, stats, start)
        if function == "sigmoid":
            scores = sigmoid(logits)
        elif function == "softmax":
            scores = softmax(logits)
        else:
            scores = logits
        id2label = self.config.id2label
        results: list[Any] = []
        for row in scores:
            if legacy:
                best = int(row.argmax())
                results.append({"label": id2label[best], "score": float(row[best])})
                continue
            ranked = sorted(
                ({"label": id2label[i], "score": float(s)} for i, s in enumerate(row)), key=lambda x: x["score"], reverse=True
            )
            results.append(ranked if top_k is None else ranked[:top_k])
        self.stats.total_seconds = time.perf_counter() - start
        # transformers wraps one string's result in a list unless top_k came with the call (not a dict's)
        if single and legacy_call and isinstance(inputs, str):
            return [results[0]]
        return results[0] if single else results

    def _function(self, name: str | None) -> str:
        if name is not None:
            name = name.lower()
            if name not in FUNCTIONS:
                raise ValueError(f"function_to_apply must be one of {FUNCTIONS}, got {name!r}")
            if name != "default":
                return name
        problem_type, num_labels = self.config.problem_type, self.config.num_labels
        if problem_type == "regression":
            return "none"
        if problem_type == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        return "softmax"


class ZeroShotClassificationPipeline(_SequenceClassifier):
    """Scores of candidate labels for each text from an NLI sequence classifier, as transformers'
    zero-shot-classification pipeline: every (text, hypothesis_template.format(label)) pair is one
    row (all rows of a call are length-grouped together), the entailment id comes from
    `config.label2id` (the first label starting with "entail"), and the entailment logits are
    softmaxed over the labels, or against contradiction per label with `multi_label=True` (or a
    single label). Each input gives {"sequence", "labels", "scores"}, best label first.
    """

    task = "zero-shot-classification"

    def __init__(self, model: Any, tokenizer: Any, hypothesis_template: str = "This example is {}.",
                 **kwargs: Any) -> None:
        require_head(model, self.task, "XLMForSequenceClassification")
        self.hypothesis_template = hypothesis_template
        super().__init__(model, tokenizer, **kwargs)
        if self.entailment_id == -1:
            raise ValueError(
                f"zero-shot-classification needs an entailment label: none of config.label2id's "
                f"{sorted(self.config.label2id)} starts with 'entail'"
            )

    @property
    def entailment_id(self) -> int:
        """The id of the first label starting with "entail" (any case), or -1."""
        for label, index in self.config.label2id.items():
            if label.lower().startswith("entail"):
                return int(index)
        return -1

    def __call__(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        lang: str | Sequence[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Rank `candidate_labels` (a list, or one comma-separated string) for one text or a list."""
        if "multi_class" in kwargs:  # transformers' old name
            multi_label = kwargs.pop("multi_class")
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        if isinstance(candidate_labels, str):
            candidate_labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
        if not candidate_labels:
            raise ValueError("candidate_labels must name at least one label")
        labels = list(candidate_labels)
        template = self.hypothesis_template if hypothesis_template is None else hypothesis_template
        if template.format(labels[0]) == template:
            raise ValueError(
                f"hypothesis_template {template!r} has no {{}} for the label; e.g. 'This example is {{}}.'"
            )
        texts, single = self._texts(sequences)
        stats = PipelineStats(sentences=len(texts))
        start = time.perf_counter()
        langs = self._normalise_langs(len(texts), lang)
        if not texts:
            self.stats = stats
            return []
        pairs = [(text, template.format(label)) for text in texts for label in labels]
        pair_langs = [lang for lang in langs for _ in labels]
        logits = self._logits(pairs, pair_langs, batch_size, stats, start, truncate="only_first" if self.truncation else False)
        logits = logits.reshape(len(texts), len(labels), -1)
        entail = self.entailment_id
        if multi_label or len(labels) == 1:
            contradiction = -1 if entail == 0 else 0
            pair = logits[..., [contradiction, entail]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[..., 1]
        else:
            scores = np.exp(logits[..., entail]) / np.exp(logits[..., entail]).sum(-1, keepdims=True)
        results = []
        for text, row in zip(texts, scores):
            order = list(reversed(row.argsort()))
            results.append({"sequence": text, "labels": [labels[i] for i in order], "scores": row[order].tolist()})
        self.stats.total_seconds = time.perf_counter() - start
        return results[0] if single else results
