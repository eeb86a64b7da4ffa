"""One-line errors for a missing framework."""

from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL = {
    "torch": "PyTorch is not installed: `pip install 'xlm[torch]'` (or `pip install torch`)",
    "tensorflow": "TensorFlow is not installed: `pip install 'xlm[tf]'` (tensorflow>=2.16 with keras>=3)",
    "keras": "Keras 3 is not installed: `pip install 'xlm[tf]'` (tensorflow>=2.16 with keras>=3), or keras>=3 "
             "with jax or torch (`pip install 'xlm[jax]'`) and KERAS_BACKEND=jax or torch",
}
_KERAS_BACKENDS = {
    "tensorflow": "`pip install tensorflow`",
    "jax": "`pip install 'jax[cpu]'` (or a CUDA build of jax)",
    "torch": "`pip install torch`",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise ImportError with the one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(_INSTALL.get(module, f"{module} is not installed: `pip install {module}`")) from err


def require_keras() -> ModuleType:
    """Import Keras 3, or raise ImportError saying what to install: Keras itself, or the backend that
    KERAS_BACKEND (default tensorflow) names."""
    import importlib.util
    import os

    try:
        found = importlib.util.find_spec("keras") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(_INSTALL["keras"])
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        keras = importlib.import_module("keras")
    except ImportError as err:
        hint = _KERAS_BACKENDS.get(backend, "one of tensorflow, jax, torch")
        raise ImportError(
            f"Keras runs on the {backend!r} backend (KERAS_BACKEND), which is not installed: {hint}, or set "
            "KERAS_BACKEND to an installed one (tensorflow, jax or torch)"
        ) from err
    if not keras.__version__.startswith("3."):
        raise ImportError(f"xlm.tf_backend needs Keras 3, found keras {keras.__version__}: `pip install 'keras>=3'`")
    return keras
