"""One-line errors for a missing framework."""

from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL = {
    "torch": "PyTorch is not installed: `pip install 'xlm[torch]'` (or `pip install torch`)",
    "tensorflow": "TensorFlow is not installed: `pip install 'xlm[tf]'` (tensorflow>=2.16 with keras>=3)",
    "keras": "Keras 3 is not installed: `pip install 'xlm[tf]'` (tensorflow>=2.16 with keras>=3)",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise ImportError with the one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(_INSTALL.get(module, f"{module} is not installed: `pip install {module}`")) from err
