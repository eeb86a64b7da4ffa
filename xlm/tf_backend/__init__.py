"""Keras 3 (TensorFlow backend) XLM models, twins of `xlm.torch_backend` with a TF prefix.

Importing this package imports TensorFlow and Keras 3 (not tf-keras); `import xlm` alone does not.
"""

from __future__ import annotations

from xlm._backend import require

require("tensorflow")
_keras = require("keras")
if not _keras.__version__.startswith("3."):
    raise ImportError(f"xlm.tf_backend needs Keras 3, found keras {_keras.__version__}: `pip install 'keras>=3'`")

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
