"""Keras 3 XLM models, twins of `xlm.torch_backend` with a TF prefix (transformers' names).

They run on every Keras 3 backend: TensorFlow, JAX or PyTorch, as `KERAS_BACKEND` picks it before keras
is first imported (TensorFlow is needed only for its own backend). Importing this package imports
Keras 3 (not tf-keras) and its backend; `import xlm` alone does not.
"""

from __future__ import annotations

from xlm._backend import require_keras

require_keras()

from xlm.tf_backend.generation import TFXLMGenerationMixin, filter_logits  # noqa: E402
from xlm.tf_backend.heads import (  # noqa: E402
    TFXLMForMultipleChoice,
    TFXLMForQuestionAnswering,
    TFXLMForQuestionAnsweringSimple,
    TFXLMForSequenceClassification,
    TFXLMForTokenClassification,
    TFXLMWithLMHeadModel,
)
from xlm.tf_backend.layers import (  # noqa: E402
    TFXLMEmbedding,
    TFXLMMultiHeadAttention,
    TFXLMPoolerAnswerClass,
    TFXLMPoolerEndLogits,
    TFXLMPoolerStartLogits,
    TFXLMPredLayer,
    TFXLMSequenceSummary,
    TFXLMSQuADHead,
    TFXLMTransformerFFN,
)
from xlm.tf_backend.modeling import (  # noqa: E402
    TFXLMCache,
    TFXLMMainLayer,
    TFXLMModel,
    TFXLMPreTrainedModel,
    keras_weights,
)

#: Every Keras model class by its weight-table architecture name.
MODEL_CLASSES = {
    cls.architecture: cls
    for cls in (
        TFXLMModel,
        TFXLMWithLMHeadModel,
        TFXLMForSequenceClassification,
        TFXLMForMultipleChoice,
        TFXLMForTokenClassification,
        TFXLMForQuestionAnsweringSimple,
        TFXLMForQuestionAnswering,
    )
}

__all__ = [
    "MODEL_CLASSES",
    "TFXLMCache",
    "TFXLMEmbedding",
    "TFXLMForMultipleChoice",
    "TFXLMForQuestionAnswering",
    "TFXLMForQuestionAnsweringSimple",
    "TFXLMForSequenceClassification",
    "TFXLMForTokenClassification",
    "TFXLMGenerationMixin",
    "TFXLMMainLayer",
    "TFXLMModel",
    "TFXLMMultiHeadAttention",
    "TFXLMPoolerAnswerClass",
    "TFXLMPoolerEndLogits",
    "TFXLMPoolerStartLogits",
    "TFXLMPreTrainedModel",
    "TFXLMPredLayer",
    "TFXLMSQuADHead",
    "TFXLMSequenceSummary",
    "TFXLMTransformerFFN",
    "TFXLMWithLMHeadModel",
    "filter_logits",
    "keras_weights",
]
