"""Model output containers shared by the PyTorch and Keras stacks.

Each output is a dataclass that also behaves like an ordered dict of its non-None fields, as
Hugging Face's `ModelOutput` does: `out.logits`, `out["logits"]`, `out[0]` and `out.to_tuple()` all
work. Models return `out.to_tuple()` when called with `return_dict=False`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


class ModelOutput(OrderedDict):
    """Base class: a dataclass whose non-None fields are also ordered dict entries."""

    def __post_init__(self) -> None:
        class_fields = fields(self)
        pairs = _as_pairs(getattr(self, class_fields[0].name))
        if pairs is not None and all(getattr(self, f.name) is None for f in class_fields[1:]):
            # Built from (key, value) pairs, as tf.nest / tf.function rebuild mappings.
            names = {f.name for f in class_fields}
            super().__setattr__(class_fields[0].name, None)
            for key, value in pairs:
                if key not in names:
                    raise TypeError(f"{type(self).__name__} has no field {key!r}; its fields: {sorted(names)}")
                super().__setattr__(key, value)
        for f in class_fields:
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __reduce__(self):  # pickle as the dataclass, not as a dict
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    def to_tuple(self) -> tuple[Any, ...]:
        """The non-None fields, in declaration order."""
        return tuple(self[k] for k in self.keys())


def _as_pairs(value: Any) -> list[tuple[str, Any]] | None:
    """The (key, value) pairs a mapping, a generator or a list of pairs holds; None for a plain value."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, Iterator):
        return list(value)
    if isinstance(value, list) and value and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in value
    ):
        return value
    return None


@dataclass(eq=False)
class BaseModelOutput(ModelOutput):
    """Output of the base model: final hidden states, and optionally all hidden states / attentions."""

    last_hidden_state: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class MaskedLMOutput(ModelOutput):
    """Output of the LM head: (log-)scores over the vocabulary for every position."""

    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class SequenceClassifierOutput(ModelOutput):
    """Output of the sequence-classification head."""

    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class MultipleChoiceModelOutput(ModelOutput):
    """Output of the multiple-choice head: one score per choice."""

    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class TokenClassifierOutput(ModelOutput):
    """Output of the token-classification head."""

    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class QuestionAnsweringModelOutput(ModelOutput):
    """Output of the simple (span start / end) question-answering head."""

    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class XLMForQuestionAnsweringOutput(ModelOutput):
    """Output of the SQuAD beam head: top-k starts, top-k ends per start and the answer class.

    As in transformers, `start_top_log_probs` / `end_top_log_probs` hold softmax probabilities
    (not logarithms), kept for checkpoint-and-code compatibility.
    """

    loss: Any = None
    start_top_log_probs: Any = None
    start_top_index: Any = None
    end_top_log_probs: Any = None
    end_top_index: Any = None
    cls_logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(eq=False)
class GenerateDecoderOnlyOutput(ModelOutput):
    """`generate(return_dict_in_generate=True)` of greedy search or sampling: the sequences, and with
    `output_scores` / `output_logits` one (batch, vocab) array per step of the processed scores / raw logits."""

    sequences: Any = None
    scores: tuple | None = None
    logits: tuple | None = None
    attentions: tuple | None = None
    hidden_states: tuple | None = None
    past_key_values: Any = None


@dataclass(eq=False)
class GenerateBeamDecoderOnlyOutput(ModelOutput):
    """`generate(return_dict_in_generate=True)` of beam search: the sequences, their final scores (with
    `output_scores`), each step's processed log-probabilities of the running beams, and the running beam each
    token came from (`beam_indices`, -1 past a sequence's end)."""

    sequences: Any = None
    sequences_scores: Any = None
    scores: tuple | None = None
    logits: tuple | None = None
    beam_indices: Any = None
    attentions: tuple | None = None
    hidden_states: tuple | None = None
    past_key_values: Any = None


# transformers' older names for the generate outputs.
GreedySearchDecoderOnlyOutput = SampleDecoderOnlyOutput = GenerateDecoderOnlyOutput
BeamSearchDecoderOnlyOutput = GenerateBeamDecoderOnlyOutput


# transformers' TensorFlow classes used TF-prefixed names for the same containers.
TFBaseModelOutput = BaseModelOutput
TFMaskedLMOutput = MaskedLMOutput
TFSequenceClassifierOutput = SequenceClassifierOutput
TFMultipleChoiceModelOutput = MultipleChoiceModelOutput
TFTokenClassifierOutput = TokenClassifierOutput
TFQuestionAnsweringModelOutput = QuestionAnsweringModelOutput
TFXLMForQuestionAnsweringOutput = XLMForQuestionAnsweringOutput
TFGreedySearchDecoderOnlyOutput = TFSampleDecoderOnlyOutput = GenerateDecoderOnlyOutput
TFBeamSearchDecoderOnlyOutput = GenerateBeamDecoderOnlyOutput
