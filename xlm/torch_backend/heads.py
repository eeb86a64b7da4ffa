"""XLM task models: the encoder (`transformer`) plus one small head and its loss each."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from xlm.config import XLMConfig
from xlm.modeling_utils import check_same_shape
from xlm.outputs import (
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    XLMForQuestionAnsweringOutput,
)
from xlm.torch_backend.generation import XLMGenerationMixin
from xlm.torch_backend.layers import XLMPredLayer, XLMSequenceSummary, XLMSQuADHead
from xlm.torch_backend.modeling import XLMModel, XLMPreTrainedModel

logger = logging.getLogger(__name__)


class XLMWithLMHeadModel(XLMPreTrainedModel, XLMGenerationMixin):
    """XLM with a language-modelling head (output projection tied to the word embeddings, or an
    adaptive softmax when `config.asm`). Labels are not shifted: position i predicts labels[:, i];
    -100 is ignored. Causal models can `generate()`.
    """

    architecture = "XLMWithLMHeadModel"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.transformer = XLMModel(config)
        self.pred_layer = XLMPredLayer(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module | None:
        return None if self.config.asm else self.pred_layer.proj

    def set_output_embeddings(self, projection: nn.Linear) -> None:
        if self.config.asm:
            raise AttributeError("an adaptive-softmax head has no single output projection to replace")
        self.pred_layer.proj = projection

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        return_logits: bool = True,
    ) -> MaskedLMOutput | tuple:
        """Scores over the vocabulary (batch, seq, vocab); the mean cross entropy with `labels` (batch, seq).

        `return_logits=False` (not in transformers) returns the loss alone, projecting only the
        labelled positions: a training step that reads nothing else skips the full-vocabulary logits.
        """
        encoded = self.transformer(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, cache, head_mask,
            inputs_embeds, output_attentions, output_hidden_states, return_dict=True,
        )
        logits, loss = self.pred_layer(encoded.last_hidden_state, labels, return_logits)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


def _classification_loss(config: XLMConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' problem types: regression (1 label, MSE), single-label (cross entropy) or
    multi-label (binary cross entropy). Unset, it is inferred from num_labels and the labels' dtype
    and written into the config, as transformers does (the first loss fixes it)."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    problem_type = config.problem_type
    if problem_type == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(
        f"unknown problem_type {problem_type!r}; expected regression, single_label_classification or "
        "multi_label_classification"
    )


class XLMForSequenceClassification(XLMPreTrainedModel):
    """XLM with a sequence-classification (or regression) head on the summary of the sequence."""

    architecture = "XLMForSequenceClassification"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = XLMModel(config)
        self.sequence_summary = XLMSequenceSummary(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Logits (batch, num_labels); loss against `labels` (batch,) or (batch, num_labels)."""
        encoded = self.transformer(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, cache, head_mask,
            inputs_embeds, output_attentions, output_hidden_states, return_dict=True,
        )
        logits = self.sequence_summary(encoded.last_hidden_state)
        loss = _classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class XLMForMultipleChoice(XLMPreTrainedModel):
    """XLM scoring each of several choices: inputs (batch, num_choices, seq) → logits (batch, num_choices)."""

    architecture = "XLMForMultipleChoice"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.transformer = XLMModel(config)
        self.sequence_summary = XLMSequenceSummary(config)
        self.logits_proj = nn.Linear(config.num_labels, 1)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultipleChoiceModelOutput | tuple:
        """Per-token inputs are (batch, num_choices, seq); `labels` (batch,) hold the right choice.
        `lengths` cannot be used here (as in transformers): pass an attention_mask."""
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        num_choices = reference.shape[1]
        if input_ids is not None:
            check_same_shape(
                "input_ids",
                input_ids.shape,
                **{
                    name: None if value is None else value.shape
                    for name, value in (
                        ("attention_mask", attention_mask),
                        ("langs", langs),
                        ("token_type_ids", token_type_ids),
                        ("position_ids", position_ids),
                    )
                },
            )

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(-1, x.shape[-1])

        if lengths is not None:
            logger.warning("XLMForMultipleChoice ignores `lengths`: pass an attention_mask instead")
        encoded = self.transformer(
            flat(input_ids),
            flat(attention_mask),
            flat(langs),
            flat(token_type_ids),
            flat(position_ids),
            None,
            cache,
            head_mask,
            None if inputs_embeds is None else inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:]),
            output_attentions,
            output_hidden_states,
            return_dict=True,
        )
        logits = self.logits_proj(self.sequence_summary(encoded.last_hidden_state)).view(-1, num_choices)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class XLMForTokenClassification(XLMPreTrainedModel):
    """XLM with a per-token classifier (e.g. named-entity recognition)."""

    architecture = "XLMForTokenClassification"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = XLMModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.emb_dim, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        """Logits (batch, seq, num_labels); cross entropy with `labels` (batch, seq), -100 ignored."""
        encoded = self.transformer(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, cache, head_mask,
            inputs_embeds, output_attentions, output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(encoded.last_hidden_state))
        loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1)) if labels is not None else None
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class XLMForQuestionAnsweringSimple(XLMPreTrainedModel):
    """XLM with a span head for extractive QA: start and end scores for every token."""

    architecture = "XLMForQuestionAnsweringSimple"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.transformer = XLMModel(config)
        self.qa_outputs = nn.Linear(config.emb_dim, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        """Start and end logits (batch, seq). The loss averages the start and end cross entropies;
        positions are clamped to [0, seq] and those equal to seq (outside the input) are ignored."""
        encoded = self.transformer(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, cache, head_mask,
            inputs_embeds, output_attentions, output_hidden_states, return_dict=True,
        )
        start_logits, end_logits = self.qa_outputs(encoded.last_hidden_state).split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            if start_positions.dim() > 1:
                start_positions = start_positions.squeeze(-1)
            if end_positions.dim() > 1:
                end_positions = end_positions.squeeze(-1)
            ignored = start_logits.shape[1]
            start_loss = F.cross_entropy(start_logits, start_positions.clamp(0, ignored), ignore_index=ignored)
            end_loss = F.cross_entropy(end_logits, end_positions.clamp(0, ignored), ignore_index=ignored)
            loss = (start_loss + end_loss) / 2
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


class XLMForQuestionAnswering(XLMPreTrainedModel):
    """XLM with the SQuAD beam head: top-k span starts, top-k ends per start, and an answerability
    logit; trained on start/end positions (and `is_impossible` with `cls_index` for SQuAD 2.0)."""

    architecture = "XLMForQuestionAnswering"

    def __init__(self, config: XLMConfig) -> None:
        super().__init__(config)
        self.transformer = XLMModel(config)
        self.qa_outputs = XLMSQuADHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        langs: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        cache: dict | None = None,
        head_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        is_impossible: torch.Tensor | None = None,
        cls_index: torch.Tensor | None = None,
        p_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> XLMForQuestionAnsweringOutput | tuple:
        """With start and end positions: the loss only. Otherwise the beam outputs (see XLMSQuADHead);
        `p_mask` (batch, seq) marks tokens that cannot be part of an answer with 1."""
        encoded = self.transformer(
            input_ids, attention_mask, langs, token_type_ids, position_ids, lengths, cache, head_mask,
            inputs_embeds, output_attentions, output_hidden_states, return_dict=True,
        )
        head = self.qa_outputs(
            encoded.last_hidden_state,
            start_positions=start_positions,
            end_positions=end_positions,
            cls_index=cls_index,
            is_impossible=is_impossible,
            p_mask=p_mask,
        )
        output = XLMForQuestionAnsweringOutput(
            **head, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()
