"""Keras XLM task models: the encoder ("transformer") plus one small head and its loss each.

Twins of `xlm/torch_backend/heads.py`, class by class. Losses are the PyTorch stack's scalar means
(transformers' TF heads returned per-example losses instead, and its LM head none).
"""

from __future__ import annotations

import logging
from typing import Any

import keras

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

from xlm.tf_backend.backend import is_integer_dtype, values_readable
from xlm.tf_backend.generation import TFXLMGenerationMixin
from xlm.tf_backend.layers import (
    TFXLMDropout,
    TFXLMPredLayer,
    TFXLMSequenceSummary,
    TFXLMSQuADHead,
    cross_entropy,
    dense,
)
from xlm.tf_backend.modeling import (
    TFXLMCache,
    TFXLMMainLayer,
    TFXLMPreTrainedModel,
    check_inputs,
    unpack_inputs,
)

ops = keras.ops
logger = logging.getLogger(__name__)
_PACKAGE = "xlm"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMWithLMHeadModel(TFXLMPreTrainedModel, TFXLMGenerationMixin):
    """XLM with a language-modelling head (output projection tied to the word embeddings, or an
    adaptive softmax when `config.asm`). Labels are not shifted: position i predicts labels[:, i];
    -100 is ignored. Causal models can `generate()`.

    Example:
        >>> model = TFXLMWithLMHeadModel(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 1]])).logits.shape
        TensorShape([1, 4, 100])
    """

    architecture = "XLMWithLMHeadModel"
    label_names = ("labels",)

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.pred_layer = TFXLMPredLayer(
            config, self.transformer.embeddings, name="pred_layer_proj", dtype=self.dtype_policy
        )
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.pred_layer.build()

    def get_output_embeddings(self) -> Any:
        """The word-embedding layer the output projection reads (None with an adaptive softmax)."""
        return None if self.config.asm else self.transformer.embeddings

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        labels: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
        return_logits: bool = True,
    ) -> MaskedLMOutput | tuple:
        """Scores over the vocabulary (batch, seq, vocab); the mean cross entropy with `labels` (batch, seq).

        `return_logits=False` (not in transformers) returns the loss alone, projecting only the
        labelled positions (as the PyTorch twin).
        """
        encoded = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        logits, loss = self.pred_layer(encoded.last_hidden_state, labels, return_logits=return_logits)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


def _classification_loss(config: XLMConfig, logits: Any, labels: Any) -> Any:
    """transformers' problem types: regression (1 label, MSE), single-label (cross entropy) or
    multi-label (binary cross entropy). Unset, it is inferred from num_labels and the labels' dtype
    and written into the config, as the PyTorch stack (and transformers' PyTorch model) does."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif is_integer_dtype(labels):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    problem_type = config.problem_type
    logits = ops.cast(logits, "float32")
    if problem_type == "regression":
        labels = ops.cast(labels, "float32")
        if config.num_labels == 1:
            return ops.mean(ops.square(ops.reshape(logits, (-1,)) - ops.reshape(labels, (-1,))))
        return ops.mean(ops.square(logits - labels))
    if problem_type == "single_label_classification":
        return cross_entropy(logits, labels)
    if problem_type == "multi_label_classification":
        return ops.mean(ops.binary_crossentropy(ops.cast(labels, "float32"), logits, from_logits=True))
    raise ValueError(
        f"unknown problem_type {problem_type!r}; expected regression, single_label_classification or "
        "multi_label_classification"
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMForSequenceClassification(TFXLMPreTrainedModel):
    """XLM with a sequence-classification (or regression) head on the summary of the sequence.

    Example:
        >>> model = TFXLMForSequenceClassification(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 1]])).logits.shape
        TensorShape([1, 2])
    """

    architecture = "XLMForSequenceClassification"
    label_names = ("labels",)

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.sequence_summary = TFXLMSequenceSummary(config, name="sequence_summary", dtype=self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.sequence_summary.build()

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        labels: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> SequenceClassifierOutput | tuple:
        """Logits (batch, num_labels); loss against `labels` (batch,) or (batch, num_labels)."""
        encoded = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        logits = self.sequence_summary(encoded.last_hidden_state, training=training)
        loss = _classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMForMultipleChoice(TFXLMPreTrainedModel):
    """XLM scoring each of several choices: inputs (batch, num_choices, seq) → logits (batch, num_choices).

    Example:
        >>> model = TFXLMForMultipleChoice(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[[0, 20, 30, 1], [0, 40, 50, 1]]])).logits.shape
        TensorShape([1, 2])
    """

    architecture = "XLMForMultipleChoice"
    input_rank = 3
    label_names = ("labels",)

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.sequence_summary = TFXLMSequenceSummary(config, name="sequence_summary", dtype=self.dtype_policy)
        self.logits_proj = dense(1, config.init_std, "logits_proj", self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.sequence_summary.build()
        self.logits_proj.build((None, self.config.num_labels))

    @staticmethod
    def _flat(x: Any, trailing: int = 1) -> Any:
        """(batch, num_choices, *rest) → (batch·num_choices, *rest), `rest` being the last `trailing` axes."""
        return None if x is None else ops.reshape(x, (-1, *ops.shape(x)[-trailing:]))  # dims unknown in a graph too

    def _check_choices(self, input_ids: Any, attention_mask: Any, langs: Any, token_type_ids: Any, position_ids: Any) -> None:
        if input_ids is not None:
            others = {"attention_mask": attention_mask, "langs": langs, "token_type_ids": token_type_ids,
                      "position_ids": position_ids}
            check_same_shape("input_ids", input_ids.shape, **{k: None if v is None else v.shape for k, v in others.items()})

    def _check_call_inputs(self, kwargs: dict[str, Any]) -> None:
        names = ("input_ids", "attention_mask", "langs", "token_type_ids", "position_ids")
        self._check_choices(*(kwargs.get(n) for n in names))
        flat = {n: self._flat(kwargs.get(n)) for n in names}
        check_inputs(self.config, **flat, inputs_embeds=self._flat(kwargs.get("inputs_embeds"), 2))

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        labels: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> MultipleChoiceModelOutput | tuple:
        """Per-token inputs are (batch, num_choices, seq); `labels` (batch,) hold the right choice.
        `lengths` cannot be used here (as in transformers): pass an attention_mask."""
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        num_choices = ops.shape(reference)[1]
        if values_readable(reference):
            self._check_choices(input_ids, attention_mask, langs, token_type_ids, position_ids)
        if lengths is not None:
            logger.warning("TFXLMForMultipleChoice ignores `lengths`: pass an attention_mask instead")
        flat = self._flat
        encoded = self.transformer(
            input_ids=flat(input_ids), attention_mask=flat(attention_mask), langs=flat(langs),
            token_type_ids=flat(token_type_ids), position_ids=flat(position_ids), lengths=None, cache=cache,
            head_mask=head_mask, inputs_embeds=flat(inputs_embeds, 2), output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        summary = self.sequence_summary(encoded.last_hidden_state, training=training)
        logits = ops.reshape(self.logits_proj(summary), (-1, num_choices))
        loss = cross_entropy(logits, labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMForTokenClassification(TFXLMPreTrainedModel):
    """XLM with a per-token classifier (e.g. named-entity recognition).

    Example:
        >>> model = TFXLMForTokenClassification(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 1]])).logits.shape
        TensorShape([1, 4, 2])
    """

    architecture = "XLMForTokenClassification"
    label_names = ("labels",)

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.dropout = TFXLMDropout(config.dropout, dtype=self.dtype_policy)
        self.classifier = dense(config.num_labels, config.init_std, "classifier", self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.classifier.build((None, None, self.config.emb_dim))

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        labels: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> TokenClassifierOutput | tuple:
        """Logits (batch, seq, num_labels); cross entropy with `labels` (batch, seq), -100 ignored."""
        encoded = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        logits = self.classifier(self.dropout(encoded.last_hidden_state, training=training))
        loss = cross_entropy(logits, labels) if labels is not None else None
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMForQuestionAnsweringSimple(TFXLMPreTrainedModel):
    """XLM with a span head for extractive QA: start and end scores for every token.

    Example:
        >>> model = TFXLMForQuestionAnsweringSimple(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 1]])).start_logits.shape
        TensorShape([1, 4])
    """

    architecture = "XLMForQuestionAnsweringSimple"
    label_names = ("start_positions", "end_positions")

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.qa_outputs = dense(config.num_labels, config.init_std, "qa_outputs", self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.qa_outputs.build((None, None, self.config.emb_dim))

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        start_positions: Any = None,
        end_positions: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> QuestionAnsweringModelOutput | tuple:
        """Start and end logits (batch, seq). The loss averages the start and end cross entropies;
        positions are clamped to [0, seq] and those equal to seq (outside the input) are ignored."""
        encoded = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
        )
        start_logits, end_logits = ops.unstack(self.qa_outputs(encoded.last_hidden_state), 2, axis=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = ops.shape(start_logits)[1]

            def span_loss(logits: Any, positions: Any) -> Any:
                positions = ops.clip(ops.reshape(ops.cast(positions, "int32"), (-1,)), 0, ignored)
                return cross_entropy(logits, ops.where(positions == ignored, -100, positions))

            loss = (span_loss(start_logits, start_positions) + span_loss(end_logits, end_positions)) / 2
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if self._return_dict(return_dict) else output.to_tuple()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TFXLMForQuestionAnswering(TFXLMPreTrainedModel):
    """XLM with the SQuAD beam head: top-k span starts, top-k ends per start, and an answerability
    logit; trained on start/end positions (and `is_impossible` with `cls_index` for SQuAD 2.0).
    transformers never had this head in TensorFlow.

    Example:
        >>> model = TFXLMForQuestionAnswering(XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4))
        >>> model(np.array([[0, 20, 30, 40, 50, 1]])).end_top_index.shape
        TensorShape([1, 25])
    """

    architecture = "XLMForQuestionAnswering"
    label_names = ("start_positions", "end_positions", "cls_index", "is_impossible")

    def __init__(self, config: XLMConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.transformer = TFXLMMainLayer(config, name="transformer", dtype=self.dtype_policy)
        self.qa_outputs = TFXLMSQuADHead(config, name="qa_outputs", dtype=self.dtype_policy)
        self.build()

    def build(self, input_shape: Any = None) -> None:
        if self.built:
            return
        self.transformer.build()
        self.qa_outputs.build()

    @unpack_inputs
    def call(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        langs: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        lengths: Any = None,
        cache: TFXLMCache | None = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        start_positions: Any = None,
        end_positions: Any = None,
        is_impossible: Any = None,
        cls_index: Any = None,
        p_mask: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> XLMForQuestionAnsweringOutput | tuple:
        """With start and end positions: the loss only. Otherwise the beam outputs (see TFXLMSQuADHead);
        `p_mask` (batch, seq) marks tokens that cannot be part of an answer with 1."""
        encoded = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, head_mask=head_mask,
            inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True, training=training,
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
