"""Batched inference over many sentences: `xlm.pipeline(task, model=..., tokenizer=...)`.

Tasks as transformers names them: feature-extraction, fill-mask, text-classification (also
"sentiment-analysis"), token-classification ("ner"), question-answering, text-generation and
zero-shot-classification. Every pipeline tokenises all inputs of a call first, groups the model's
rows by length into few large batches with little padding (`plan_batches`), runs our PyTorch or
Keras model once per batch and hands results back in input order, equal to what each input alone
gives (and, where transformers' pipeline runs on the same weights, to its results).
"""

from __future__ import annotations

import os
from typing import Any

from xlm.pipelines.base import (
    KERAS_MODES,
    ROUTES,
    Features,
    Pipeline,
    PipelineStats,
    check_device,
    detect_framework,
    parse_device,
    plan_batches,
)
from xlm.pipelines.feature_extraction import POOLINGS, FeatureExtractionPipeline
from xlm.pipelines.fill_mask import FillMaskPipeline
from xlm.pipelines.question_answering import QuestionAnsweringPipeline
from xlm.pipelines.text_classification import TextClassificationPipeline, ZeroShotClassificationPipeline
from xlm.pipelines.text_generation import TextGenerationPipeline
from xlm.pipelines.token_classification import AGGREGATION_STRATEGIES, TokenClassificationPipeline

_PIPELINES: dict[str, type[Pipeline]] = {
    "feature-extraction": FeatureExtractionPipeline,
    "fill-mask": FillMaskPipeline,
    "text-classification": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "text-generation": TextGenerationPipeline,
    "zero-shot-classification": ZeroShotClassificationPipeline,
}
TASK_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
TASKS = tuple(_PIPELINES)
# The model class a path is loaded as, per task (the Keras twin is "TF" + the name).
_MODEL_CLASSES = {
    "feature-extraction": "XLMModel",
    "fill-mask": "XLMWithLMHeadModel",
    "text-classification": "XLMForSequenceClassification",
    "token-classification": "XLMForTokenClassification",
    "question-answering": "XLMForQuestionAnsweringSimple",
    "text-generation": "XLMWithLMHeadModel",
    "zero-shot-classification": "XLMForSequenceClassification",
}
FRAMEWORKS = {"torch": "torch", "pt": "torch", "pytorch": "torch", "keras": "keras", "tf": "keras", "tensorflow": "keras"}


def _default_framework() -> str:
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return "torch"
    if importlib.util.find_spec("keras") is not None:
        return "keras"
    raise ImportError("neither PyTorch nor Keras is installed: `pip install 'xlm[torch]'`, `'xlm[tf]'` or `'xlm[jax]'`")


def _model_class_for(task: str, path: str) -> str:
    """The task's class, except question-answering from a checkpoint of the SQuAD beam head."""
    name = _MODEL_CLASSES[task]
    if task == "question-answering":
        import json

        config = os.path.join(path, "config.json")
        if os.path.isfile(config):
            with open(config, encoding="utf-8") as f:
                if "XLMForQuestionAnswering" in (json.load(f).get("architectures") or []):
                    name = "XLMForQuestionAnswering"
    return name


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Any = None,
    batch_size: int = 256,
    framework: str | None = None,
    device: Any = None,
    dtype: Any = None,
    torch_dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build a batched inference pipeline for `task`, with transformers' construction arguments.

    Args:
        task: one of TASKS ("sentiment-analysis" and "ner" are accepted as transformers' aliases).
        model: a model of either stack, or a directory / hub id to load the task's class from.
        tokenizer: an XLMTokenizer or a directory to load one from (default: `model`'s directory).
        batch_size: most rows per batch (also accepted per call).
        framework: which stack loads a path: "pt" / "torch" or "tf" / "keras" (our Keras stack, on
            whichever Keras backend is set); default torch if installed.
        device: -1 or "cpu", a GPU index, "cuda:n" or a torch.device (a missing GPU is a ValueError).
        dtype / torch_dtype: the dtype a path is loaded in (as from_pretrained takes it).
        model_kwargs: further from_pretrained arguments for a path.
        **kwargs: the Pipeline options (max_tokens, max_padding, batch_overhead, lang, truncation,
            keras_mode) and the task's own (pooling, top_k, targets, function_to_apply,
            aggregation_strategy, ...).

    The returned pipeline is called on one input or a list; `pipeline.stats` then holds what the
    call did (batches, real and padded tokens, `padding_waste`, seconds per stage).

    Example:
        >>> extractor = xlm.pipeline("feature-extraction", model=model, tokenizer=tokenizer)
        >>> features = extractor(["Hello world.", "A longer sentence goes here."], return_tensors=True)
        >>> [f.shape for f in features]  # (1, tokens, hidden size) each, in input order
    """
    task = TASK_ALIASES.get(task, task)
    if task not in _PIPELINES:
        raise ValueError(f"unknown task {task!r}; supported tasks: {', '.join(TASKS)}")
    if model is None:
        raise ValueError(f"{task} needs a model: pass model= a model object or a directory / hub id")
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise ValueError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; pass one")
    dtype = dtype if dtype is not None else torch_dtype
    if framework is not None and framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        import xlm

        path = os.fsdecode(model)
        stack = FRAMEWORKS[framework] if framework else _default_framework()
        name = _model_class_for(task, path)
        load_kwargs = dict(model_kwargs or {})
        if dtype is not None:
            load_kwargs["dtype"] = dtype
        model = getattr(xlm, name if stack == "torch" else "TF" + name).from_pretrained(path, **load_kwargs)
        if tokenizer is None:
            tokenizer = path
    elif framework is not None and FRAMEWORKS[framework] != detect_framework(model):
        raise ValueError(f"framework={framework!r} does not match the model given, a {detect_framework(model)} model")
    if tokenizer is None:
        raise ValueError("a tokenizer is needed: pass tokenizer=XLMTokenizer.from_pretrained(...) or a directory")
    if isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__"):
        from xlm.tokenizer import XLMTokenizer

        tokenizer = XLMTokenizer.from_pretrained(os.fsdecode(tokenizer))
    return _PIPELINES[task](model, tokenizer, batch_size=batch_size, device=device, **kwargs)


__all__ = [
    "AGGREGATION_STRATEGIES",
    "FRAMEWORKS",
    "KERAS_MODES",
    "POOLINGS",
    "ROUTES",
    "TASKS",
    "FeatureExtractionPipeline",
    "Features",
    "FillMaskPipeline",
    "Pipeline",
    "PipelineStats",
    "QuestionAnsweringPipeline",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TokenClassificationPipeline",
    "ZeroShotClassificationPipeline",
    "check_device",
    "detect_framework",
    "parse_device",
    "pipeline",
    "plan_batches",
]
