"""XLM cross-lingual language models with twin PyTorch and Keras 3 implementations.

`import xlm` needs neither framework: the config, tokenizer and checkpoint tools are
backend-neutral, and model classes are imported from their stack on first use
(`xlm.XLMModel` imports torch, `xlm.TFXLMModel` imports Keras 3 and the backend KERAS_BACKEND names).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from xlm.config import XLMConfig  # noqa: E402

_TORCH_NAMES = (
    "XLMPreTrainedModel",
    "XLMModel",
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForMultipleChoice",
    "XLMForTokenClassification",
    "XLMForQuestionAnsweringSimple",
    "XLMForQuestionAnswering",
)
_TF_NAMES = ("TFXLMMainLayer", "TFXLMPreTrainedModel") + tuple("TF" + n for n in _TORCH_NAMES[1:])
_LAZY = {
    "XLMTokenizer": "xlm.tokenizer",
    "AddedToken": "xlm.tokenizer",
    "DataCollatorWithPadding": "xlm.data_collator",
    "DefaultDataCollator": "xlm.data_collator",
    "pipeline": "xlm.pipelines",
    "GenerationConfig": "xlm.generation_config",
    **{name: "xlm.torch_backend" for name in _TORCH_NAMES},
    **{name: "xlm.tf_backend" for name in _TF_NAMES},
}

__all__ = ["XLMConfig", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xlm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
