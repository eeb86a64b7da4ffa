"""Lossless XLM weight conversion (PyTorch <-> Keras, original facebookresearch/XLM -> both) and
the parity cross-check that proves it. Command line: `xlm-convert` or `python -m conversion`.

Importing this package needs neither PyTorch nor TensorFlow; each tool imports the framework it
runs when it runs.
"""

from conversion.convert import (
    ConversionResult,
    convert_checkpoint,
    detect_architecture,
    keras_to_state_dict,
    keras_to_torch,
    state_dict_to_keras,
    torch_to_keras,
)
from conversion.original import UnsupportedCheckpointError, convert_original_checkpoint, load_original_checkpoint

__all__ = [
    "ConversionResult",
    "UnsupportedCheckpointError",
    "convert_checkpoint",
    "convert_original_checkpoint",
    "detect_architecture",
    "keras_to_state_dict",
    "keras_to_torch",
    "load_original_checkpoint",
    "state_dict_to_keras",
    "torch_to_keras",
]
