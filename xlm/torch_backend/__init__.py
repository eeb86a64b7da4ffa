"""The PyTorch XLM stack: the encoder, every task head, and their building blocks.

Checkpoint-compatible with transformers' XLM classes (same parameter names, forward arguments and
outputs); importing this module needs torch.
"""

from xlm._backend import require

require("torch")

from xlm.outputs import (  # noqa: E402
    BaseModelOutput,
    GenerateBeamDecoderOnlyOutput,
    GenerateDecoderOnlyOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    XLMForQuestionAnsweringOutput,
)
from xlm.torch_backend.generation import XLMGenerationMixin, filter_logits  # noqa: E402
from xlm.torch_backend.heads import (  # noqa: E402
    XLMForMultipleChoice,
    XLMForQuestionAnswering,
    XLMForQuestionAnsweringSimple,
    XLMForSequenceClassification,
    XLMForTokenClassification,
    XLMWithLMHeadModel,
)
from xlm.torch_backend.layers import (  # noqa: E402
    XLMMultiHeadAttention,
    XLMPoolerAnswerClass,
    XLMPoolerEndLogits,
    XLMPoolerStartLogits,
    XLMPredLayer,
    XLMSequenceSummary,
    XLMSQuADHead,
    XLMTransformerFFN,
)
from xlm.torch_backend.modeling import XLMModel, XLMPreTrainedModel  # noqa: E402

MODEL_CLASSES = {
    cls.architecture: cls
    for cls in (
        XLMModel,
        XLMWithLMHeadModel,
        XLMForSequenceClassification,
        XLMForMultipleChoice,
        XLMForTokenClassification,
        XLMForQuestionAnsweringSimple,
        XLMForQuestionAnswering,
    )
}

__all__ = [
    "MODEL_CLASSES",
    "XLMPreTrainedModel",
    "XLMModel",
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForMultipleChoice",
    "XLMForTokenClassification",
    "XLMForQuestionAnsweringSimple",
    "XLMForQuestionAnswering",
    "XLMGenerationMixin",
    "filter_logits",
    "XLMMultiHeadAttention",
    "XLMTransformerFFN",
    "XLMPredLayer",
    "XLMSequenceSummary",
    "XLMPoolerStartLogits",
    "XLMPoolerEndLogits",
    "XLMPoolerAnswerClass",
    "XLMSQuADHead",
    "BaseModelOutput",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
    "MultipleChoiceModelOutput",
    "TokenClassifierOutput",
    "QuestionAnsweringModelOutput",
    "XLMForQuestionAnsweringOutput",
    "GenerateDecoderOnlyOutput",
    "GenerateBeamDecoderOnlyOutput",
]
