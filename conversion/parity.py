"""Parity cross-check: our PyTorch stack and our Keras stack on the same weights and inputs.

Both models run on tokenised sample sentences in several languages (padding, language ids,
token_type_ids, TLM-style restarted position ids) and every intermediate is compared: the
embedding output, each layer's hidden state and attention probabilities, and every output of the
head. The report gives max absolute and relative differences per tensor with pass / fail against
`atol + rtol * max|reference|`, as a table, as JSON and optionally as a PNG plot.

The Keras side runs on whichever Keras 3 backend is active (TensorFlow, JAX or torch; see
`use_keras_backend`), on the CPU or the GPU, with full float32 pinned in every framework that runs.
The reference is always our PyTorch stack in float32; `dtype="bfloat16"` runs both stacks in
bfloat16 (PyTorch autocast, Keras "mixed_bfloat16") against it, with its own tolerance, and
`reference_device` computes the reference on another device (GPU results against the CPU's).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from xlm._io import atomic_path, atomic_write_text
from xlm.config import XLMConfig

__all__ = [
    "BFLOAT16_ATOL",
    "BFLOAT16_RTOL",
    "DTYPES",
    "KERAS_BACKENDS",
    "SAMPLE_SENTENCES",
    "TensorDiff",
    "ParityReport",
    "compare_outputs",
    "default_tolerance",
    "make_inputs",
    "run_parity",
    "use_keras_backend",
]

#: (language, sentence, optional (language, second sentence) for a TLM-style pair)
SAMPLE_SENTENCES: tuple[tuple[str, str, tuple[str, str] | None], ...] = (
    ("en", "The quick brown fox jumps over the lazy dog.", None),
    ("fr", "Le renard brun saute par-dessus le chien paresseux.", None),
    ("de", "Der schnelle braune Fuchs springt über den faulen Hund.", None),
    ("en", "Click the button to save the document.", ("fr", "Cliquez sur le bouton pour enregistrer le document.")),
    ("de", "Öffnen Sie die Datei.", None),
    ("fr", "Où est la bibliothèque ?", None),
)

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
# bfloat16 keeps 8 significant bits (rounding up to 2**-9 = 2e-3 relative per operation) and the
# errors grow with depth. Measured against the float32 reference on CPU (PyTorch autocast and Keras
# mixed_bfloat16 alike): the bundled 4-layer model differs by at most 1e-2 of a tensor's largest
# magnitude (0.064 on logits of magnitude 11), a random 12-layer, 2048-wide xlm-mlm-en-2048-shaped
# model by at most 1.9e-2 (0.073 on logits of magnitude 4.5, 0.06 on hidden states of 4.4). So
# 0.05 + 0.05 * max|reference| leaves a factor of 3.7 or more for other hardware and longer inputs,
# while an overflow to inf, a NaN, or a mask or weight error of order 1 still fails.
BFLOAT16_ATOL = 5e-2
BFLOAT16_RTOL = 5e-2

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
DTYPES = ("float32", "bfloat16")
KERAS_DTYPE_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@dataclass
class TensorDiff:
    """One compared tensor: its largest absolute difference, and that relative to the largest
    reference magnitude; integer tensors count mismatching elements instead."""

    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    reference_max: float
    passed: bool
    mismatches: int | None = None  # integer tensors (top-k indices) only


@dataclass
class ParityReport:
    """Everything a parity run measured (`table()`, `to_json()`, `plot()`).

    `diffs` compare the Keras side with the reference (our PyTorch stack in float32 on
    `reference_device`); `torch_diffs` compare the PyTorch side with it when that side is not the
    reference itself (bfloat16, or another device than the reference's), else they are empty.
    """

    torch_dir: str
    keras_dir: str
    architecture: str
    requested_device: str
    torch_device: str
    keras_device: str
    precision: dict[str, Any]
    atol: float
    rtol: float
    inputs: dict[str, Any]
    diffs: list[TensorDiff]
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    keras_backend: str = "tensorflow"
    dtype: str = "float32"
    reference_device: str = ""
    torch_diffs: list[TensorDiff] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.diffs + self.torch_diffs)

    @property
    def failures(self) -> list[TensorDiff]:
        return [d for d in self.diffs + self.torch_diffs if not d.passed]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save_json(self, path: str | os.PathLike) -> str:
        atomic_write_text(path, self.to_json())
        return os.fspath(path)

    def table(self) -> str:
        """The report as aligned text: settings, one row per tensor, the verdict."""
        reference = f"PyTorch float32 on {self.reference_device or self.torch_device}"
        lines = [
            f"parity: our PyTorch stack vs our Keras stack ({self.keras_backend} backend), {self.architecture}, "
            f"{self.dtype}",
            f"  PyTorch weights: {self.torch_dir}",
            f"  Keras weights:   {self.keras_dir}",
            f"  device: requested {self.requested_device}; PyTorch ran on {self.torch_device}, "
            f"Keras on {self.keras_device}; reference: {reference}",
            "  precision: " + ", ".join(f"{k}={v}" for k, v in self.precision.items()),
            f"  inputs: {self.inputs.get('description', '')}",
            f"  tolerance: |diff| <= {self.atol:g} + {self.rtol:g} * max|reference|",
        ]
        sections = [(f"Keras ({self.keras_backend}, {self.dtype}) vs {reference}", self.diffs)]
        if self.torch_diffs:
            sections.append((f"PyTorch ({self.dtype}, {self.torch_device}) vs {reference}", self.torch_diffs))
        every = self.diffs + self.torch_diffs
        width = max([len(d.name) for d in every] + [6])
        for title, diffs in sections:
            lines += ["", f"  {title}:"] if len(sections) > 1 else [""]
            lines.append(f"  {'tensor':<{width}}  {'shape':<16}  {'max abs diff':>12}  {'max rel diff':>12}  result")
            lines.append("  " + "-" * (width + 16 + 12 + 12 + 14))
            for d in diffs:
                shape = "x".join(str(s) for s in d.shape) or "scalar"
                if d.mismatches is not None:
                    values = f"{d.mismatches:>12d}  {'(mismatches)':>12}"
                else:
                    values = f"{d.max_abs:>12.3e}  {d.max_rel:>12.3e}"
                lines.append(f"  {d.name:<{width}}  {shape:<16}  {values}  {'pass' if d.passed else 'FAIL'}")
        worst = max((d.max_abs for d in every if d.mismatches is None), default=0.0)
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(every)} tensors)"
        lines += ["", f"  {verdict}: {len(every)} tensors compared, largest difference {worst:.3e}, "
                      f"{self.seconds:.1f}s"]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> str:
        """A PNG of the per-layer differences (needs matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("the parity plot needs matplotlib: `pip install matplotlib` (or 'xlm[plot]')") from None
        hidden = [d for d in self.diffs if d.name.startswith("hidden_states.")]
        attentions = [d for d in self.diffs if d.name.startswith("attentions.")]
        heads = [d for d in self.diffs if d.mismatches is None and not d.name.startswith(("hidden_states.", "attentions."))]
        floor = 1e-12  # zero differences still show on the log scale
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([int(d.name.split(".")[1]) for d in hidden], [max(d.max_abs, floor) for d in hidden],
                "o-", label="hidden state (0 = embeddings)")
        ax.plot([int(d.name.split(".")[1]) + 1 for d in attentions], [max(d.max_abs, floor) for d in attentions],
                "s--", label="attention probabilities")
        last = len(hidden)
        for i, d in enumerate(heads):
            ax.plot([last + 0.5 + 0.25 * i], [max(d.max_abs, floor)], "^", label=d.name)
        ax.axhline(self.atol, color="red", linewidth=0.8, linestyle=":", label=f"atol {self.atol:g}")
        ax.set_yscale("log")
        ax.set_xticks(range(last + 1))
        ax.set_xlabel("layer")
        ax.set_ylabel("max |PyTorch - Keras|")
        devices = f"{self.torch_device.split('/')[-1]} / {self.keras_device.split('/')[-1]}"
        ax.set_title(f"{self.architecture}, {self.dtype}: PyTorch vs Keras on {self.keras_backend} ({devices})",
                     fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        return os.fspath(path)


# --- inputs -------------------------------------------------------------------------------------


def make_inputs(
    config: XLMConfig,
    tokenizer_dir: str | None = None,
    sentences: Sequence[tuple[str, str, tuple[str, str] | None]] = SAMPLE_SENTENCES,
    seed: int = 0,
) -> dict[str, Any]:
    """Padded numpy inputs: input_ids, attention_mask, token_type_ids, position_ids (restarted at
    the second sentence of a pair) and langs (when the config has several languages).

    Sentences are tokenised with the XLMTokenizer in `tokenizer_dir` (vocab.json + merges.txt);
    without one, random ids of the same lengths stand in. Returns the arrays plus 'description'.
    """
    rows, description = _encode(config, tokenizer_dir, sentences, seed)
    length = max(len(r["ids"]) for r in rows)
    batch = len(rows)
    ids = np.full((batch, length), config.pad_index, dtype=np.int64)
    mask = np.zeros((batch, length), dtype=np.int64)
    types = np.zeros((batch, length), dtype=np.int64)
    positions = np.zeros((batch, length), dtype=np.int64)
    langs = np.zeros((batch, length), dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row["ids"])
        ids[i, :n] = row["ids"]
        mask[i, :n] = 1
        types[i, :n] = row["types"]
        positions[i, :n] = row["positions"]
        langs[i, :n] = row["langs"]
        langs[i, n:] = row["langs"][-1]  # padding: masked out, any valid id will do
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "position_ids": positions}
    if config.n_langs > 1:
        inputs["langs"] = langs
    inputs["description"] = description + f"; batch {batch} x {length} tokens, {int(mask.sum())} real"
    return inputs


def _lang_id(config: XLMConfig, lang: str) -> int:
    if config.n_langs <= 1:
        return 0
    if config.lang2id and lang in config.lang2id:
        return int(config.lang2id[lang])
    return 0


def _encode(config: XLMConfig, tokenizer_dir: str | None, sentences: Sequence, seed: int) -> tuple[list[dict], str]:
    tokenizer = None
    if tokenizer_dir and all(os.path.isfile(os.path.join(tokenizer_dir, f)) for f in ("vocab.json", "merges.txt")):
        from xlm.tokenizer import XLMTokenizer

        tokenizer = XLMTokenizer.from_pretrained(tokenizer_dir)
    rng = np.random.default_rng(seed)
    rows = []
    languages = sorted({s[0] for s in sentences} | {s[2][0] for s in sentences if s[2]})
    for lang, text, pair in sentences:
        segments = [(lang, text)] + ([pair] if pair else [])
        if tokenizer is not None:
            known = getattr(tokenizer, "lang2id", None)  # a language outside it gets the default rules
            pieces = [tokenizer.encode(t, add_special_tokens=False, lang=lg if not known or lg in known else None)
                      for lg, t in segments]
        else:
            pieces = [list(rng.integers(14, config.vocab_size, size=3 + len(t.split()))) for _, t in segments]
        # <s> A </s> [B </s>], as transformers' XLM tokenizer lays out sequences
        ids, types, positions, langs = [config.bos_index], [0], [0], [_lang_id(config, lang)]
        for k, ((lg, _), piece) in enumerate(zip(segments, pieces)):
            segment = [int(i) for i in piece] + [config.eos_index]
            first = positions[-1] + 1 if k == 0 else 0  # the second sentence restarts at 0 (TLM)
            ids += segment
            types += [k] * len(segment)
            positions += list(range(first, first + len(segment)))
            langs += [_lang_id(config, lg)] * len(segment)
        limit = config.max_position_embeddings  # keep every position id inside the position table
        if max(positions) >= limit:
            keep = [k for k, p in enumerate(positions) if p < limit]
            ids, types, positions, langs = ([seq[k] for k in keep] for seq in (ids, types, positions, langs))
        bad = [i for i in ids if not 0 <= i < config.vocab_size]
        if bad:
            raise ValueError(f"the tokenizer in {tokenizer_dir} gives id {bad[0]}, outside the model's vocabulary "
                             f"of {config.vocab_size}")
        rows.append({"ids": ids, "types": types, "positions": positions, "langs": langs})
    source = f"tokenised with {tokenizer_dir}" if tokenizer is not None else "random ids (no tokenizer files)"
    return rows, f"{len(sentences)} sentences in {', '.join(languages)} ({source}), one TLM-style pair"


def _model_inputs(inputs: Mapping[str, Any], architecture: str) -> dict[str, np.ndarray]:
    arrays = {k: v for k, v in inputs.items() if isinstance(v, np.ndarray)}
    if architecture == "XLMForMultipleChoice":  # (questions, choices, length): pairs of rows
        rows = arrays["input_ids"].shape[0] // 2 * 2
        arrays = {k: v[:rows].reshape(rows // 2, 2, -1) for k, v in arrays.items()}
    if architecture == "XLMForQuestionAnswering":
        # Padded positions share a hidden state, so their scores tie exactly and top-k indices
        # among them would be decided by float noise: mask them out of the beam search.
        arrays["p_mask"] = (1 - arrays["attention_mask"]).astype(np.float32)
    return arrays


# --- running ------------------------------------------------------------------------------------


def _flatten(output: Any, to_numpy: Any) -> dict[str, np.ndarray]:
    """Named numpy arrays of a model output: head outputs, hidden_states.i, attentions.i."""
    out: dict[str, np.ndarray] = {}
    for key, value in output.items():
        if value is None or key == "loss":
            continue
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                out[f"{key}.{i}"] = _as_float32(to_numpy(item))
        else:
            out[key] = _as_float32(to_numpy(value))
    return out


def _as_float32(array: np.ndarray) -> np.ndarray:
    """Low-precision floats (bfloat16, float16) widened to float32; integers and float64 kept."""
    array = np.asarray(array)
    if array.dtype.kind in "iub" or array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float32)


def _torch_numpy(value: Any) -> np.ndarray:
    import torch

    value = value.detach().cpu()
    if value.dtype in (torch.bfloat16, torch.float16):
        value = value.float()  # numpy has no bfloat16
    return value.numpy()


def compare_outputs(reference: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray],
                    atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> list[TensorDiff]:
    """Per-tensor differences of `other` against `reference` (PyTorch), in a readable order."""
    missing = sorted(set(reference) ^ set(other))
    if missing:
        raise ValueError(f"the two models returned different outputs: {', '.join(missing)} only on one side")

    def order(name: str) -> tuple:
        kind, _, index = name.partition(".")
        rank = {"hidden_states": 0, "attentions": 1}.get(kind, 2)
        return (int(index) if index.isdigit() else 0, rank, name) if rank < 2 else (10**9, rank, name)

    diffs = []
    for name in sorted(reference, key=order):
        a, b = np.asarray(reference[name]), np.asarray(other[name])
        if a.shape != b.shape:
            diffs.append(TensorDiff(name, list(a.shape), float("inf"), float("inf"), 0.0, False))
            continue
        if np.issubdtype(a.dtype, np.integer) or np.issubdtype(b.dtype, np.integer):
            mismatches = int(np.sum(a != b))
            diffs.append(TensorDiff(name, list(a.shape), float(mismatches > 0), float(mismatches > 0), 0.0,
                                    mismatches == 0, mismatches))
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        finite = np.isfinite(a64) & np.isfinite(b64)
        same_nonfinite = np.array_equal(np.isnan(a64), np.isnan(b64)) and np.array_equal(
            np.where(np.isinf(a64), a64, 0), np.where(np.isinf(b64), b64, 0))
        delta = np.abs(a64 - b64)[finite]
        max_abs = float(delta.max()) if delta.size else 0.0
        scale = float(np.abs(a64[finite]).max()) if finite.any() else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        passed = same_nonfinite and max_abs <= atol + rtol * scale
        if not same_nonfinite:
            max_abs = max_rel = float("inf")
        diffs.append(TensorDiff(name, list(a.shape), max_abs, max_rel, scale, passed))
    return diffs


def _versions(keras_backend: str) -> dict[str, str]:
    """Versions of what ran, read from package metadata: nothing is imported for this."""
    import xlm

    versions = {"python": platform.python_version(), "numpy": np.__version__, "xlm": xlm.__version__}
    packages = ["torch", "keras", {"tensorflow": "tensorflow", "jax": "jax"}.get(keras_backend, "")]
    if keras_backend == "jax":
        packages.append("jaxlib")
    for package in filter(None, packages):
        module = sys.modules.get(package)
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                version = "not installed"
        versions[package] = version
    return versions


# --- Keras backend, devices and precision -------------------------------------------------------


def use_keras_backend(name: str | None = None, *, import_keras: bool = True) -> str | None:
    """Make `name` ("tensorflow", "jax" or "torch") the Keras backend and return the active one.

    The backend is fixed when keras is first imported, so this sets KERAS_BACKEND before that; if
    keras is already imported with another backend, it is a RuntimeError. `None` keeps whatever
    KERAS_BACKEND (or ~/.keras/keras.json) selects. With `import_keras=False` keras is not imported
    here (the answer is then `name`, or None when it is left to keras).
    """
    if name is not None and name not in KERAS_BACKENDS:
        raise ValueError(f"unknown Keras backend {name!r}; expected one of {', '.join(KERAS_BACKENDS)}")
    keras = sys.modules.get("keras")
    if keras is not None:
        active = keras.backend.backend()
        if name is not None and active != name:
            raise RuntimeError(
                f"keras is already imported with the {active!r} backend in this process, so it cannot switch to "
                f"{name!r}: set KERAS_BACKEND={name} before anything imports keras (or use a new process)"
            )
        return active
    if name is not None:
        os.environ["KERAS_BACKEND"] = name
    if not import_keras:
        return name
    import keras

    active = keras.backend.backend()
    if name is not None and active != name:  # pragma: no cover - keras ignored KERAS_BACKEND
        raise RuntimeError(f"asked Keras for the {name!r} backend but it started with {active!r}")
    return active


def _gpu_problems(keras_backend: str) -> list[str]:
    """One phrase per framework that would run on the GPU but sees none."""
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)")
    if keras_backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            problems.append("TensorFlow (the Keras backend) sees no GPU (tf.config.list_physical_devices('GPU') "
                            "is empty)")
    elif keras_backend == "jax":
        import jax

        try:
            jax.devices("gpu")
        except RuntimeError:
            platforms = sorted({d.platform for d in jax.devices()})
            problems.append(f"JAX (the Keras backend) sees no GPU (jax.devices() has only {', '.join(platforms)}: "
                            "is jax installed with CUDA?)")
    elif keras_backend == "torch" and problems:
        problems[0] = problems[0].replace("PyTorch sees", "PyTorch (also the Keras backend) sees")
    return problems


def _set_precision(device: str, keras_backend: str, dtype: str = "float32") -> tuple[Any, str, dict[str, Any]]:
    """The torch device and the Keras device name for `device`, with full float32 pinned in every
    framework that runs (TF32 and reduced-precision matmuls off), and the settings as recorded."""
    import torch

    if device not in ("cpu", "gpu"):
        raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'gpu'")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if device == "gpu":
        problems = _gpu_problems(keras_backend)
        if problems:
            raise RuntimeError("--device gpu: " + "; ".join(problems))
    # Full float32 everywhere: PyTorch allows TF32 in cuDNN by default, TensorFlow in matmuls on
    # Ampere+, and JAX may pick TF32 or bfloat16 passes for float32 dots on GPU.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    precision: dict[str, Any] = {
        "dtype": dtype,
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    # TensorFlow only when it runs (the Keras backend) or something already imported it: the JAX
    # and torch paths must work where TensorFlow is not installed.
    if keras_backend == "tensorflow" or sys.modules.get("tensorflow") is not None:
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
        precision["tf tensor_float_32_execution"] = tf.config.experimental.tensor_float_32_execution_enabled()
    if keras_backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
        precision["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    torch_device = torch.device("cuda" if device == "gpu" else "cpu")
    if dtype == "bfloat16":
        precision["torch autocast"] = f"bfloat16 ({torch_device.type})"
    precision["keras dtype policy"] = KERAS_DTYPE_POLICY[dtype]
    keras_device = "gpu:0" if device == "gpu" else "cpu:0"
    if keras_backend == "torch":
        # Keras' torch variables stay Parameters only when this equals its own device name
        # ("cpu" / "cuda"); "cpu:0" turns them into plain tensors, and integer ones then fail.
        keras_device = device
    return torch_device, keras_device, precision


def _torch_device_name(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _keras_device_name(tensor: Any, keras_backend: str) -> str:
    """A readable name of the device a Keras output really lived on, with the GPU's name."""
    if keras_backend == "jax":
        devices = sorted(tensor.devices(), key=lambda d: d.id)
        return ", ".join(f"{d.platform}:{d.id}" + (f" ({d.device_kind})" if d.platform != "cpu" else "")
                         for d in devices)
    if keras_backend == "torch":
        return _torch_device_name(tensor.device)
    device = tensor.device
    if "GPU" in device.upper():
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        name = details.get("device_name", "")
        return f"{device} ({name})" if name else device
    return device


def default_tolerance(dtype: str = "float32") -> tuple[float, float]:
    """(atol, rtol) a parity run in `dtype` uses by default."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return (BFLOAT16_ATOL, BFLOAT16_RTOL) if dtype == "bfloat16" else (DEFAULT_ATOL, DEFAULT_RTOL)


# --- running ------------------------------------------------------------------------------------


def _run_torch(model: Any, arrays: Mapping[str, np.ndarray], device: Any, dtype: str) -> dict[str, np.ndarray]:
    import torch

    flags = dict(output_hidden_states=True, output_attentions=True, return_dict=True)
    model = model.to(device)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        out = model(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()}, **flags)
    ran_on = next(iter(v for v in out.values() if hasattr(v, "device"))).device
    return {"device": _torch_device_name(ran_on), "outputs": _flatten(out, _torch_numpy)}


def _run_keras(model_class: Any, keras_dir: str, arrays: Mapping[str, np.ndarray], device: str, dtype: str,
               keras_backend: str) -> dict[str, Any]:
    import keras

    flags = dict(output_hidden_states=True, output_attentions=True, return_dict=True)
    no_grad: Any = contextlib.nullcontext()
    if keras_backend == "torch":  # eager torch ops would otherwise record autograd history
        import torch

        no_grad = torch.no_grad()
    with keras.device(device):
        model = model_class.from_pretrained(keras_dir, dtype=KERAS_DTYPE_POLICY[dtype])
        # int32 ids everywhere: JAX has no int64 without x64 mode and would narrow them with a warning
        tensors = {k: keras.ops.convert_to_tensor(v.astype(np.int32) if v.dtype == np.int64 else v)
                   for k, v in arrays.items()}
        with no_grad:  # not around from_pretrained: Keras' torch variables are made outside no_grad
            out = model(**tensors, training=False, **flags)
        first = next(iter(v for v in out.values() if v is not None and not isinstance(v, (tuple, list))))
        outputs = _flatten(out, keras.ops.convert_to_numpy)
    return {"device": _keras_device_name(first, keras_backend), "outputs": outputs}


def run_parity(
    torch_dir: str | os.PathLike,
    keras_dir: str | os.PathLike | None = None,
    *,
    architecture: str | None = None,
    device: str = "cpu",
    atol: float | None = None,
    rtol: float | None = None,
    sentences: Sequence[tuple[str, str, tuple[str, str] | None]] = SAMPLE_SENTENCES,
    tokenizer_dir: str | os.PathLike | None = None,
    dtype: str = "float32",
    keras_backend: str | None = None,
    reference_device: str | None = None,
) -> ParityReport:
    """Load `torch_dir` into our PyTorch stack and `keras_dir` (default: the same directory) into
    our Keras stack, run both on the sample sentences on `device` and compare every intermediate
    with the reference: our PyTorch stack in float32 on `reference_device` (default `device`).

    `dtype="bfloat16"` runs PyTorch under bfloat16 autocast and Keras with the "mixed_bfloat16"
    policy, and both are compared with the float32 reference; `atol` / `rtol` default to
    `default_tolerance(dtype)`. `keras_backend` selects the Keras backend (see `use_keras_backend`;
    default: the active or configured one).
    """
    start = time.perf_counter()
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    default_atol, default_rtol = default_tolerance(dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    reference_device = reference_device or device
    from xlm.checkpoint import open_state_dict, resolve_pretrained_dir

    from conversion.convert import detect_architecture

    torch_dir = resolve_pretrained_dir(torch_dir)
    keras_dir = resolve_pretrained_dir(keras_dir) if keras_dir is not None else torch_dir
    config = XLMConfig.from_pretrained(torch_dir)
    if architecture is None:
        with open_state_dict(torch_dir, config, "XLMModel") as reader:
            architecture = detect_architecture(reader, config)
    from xlm.weights import normalize_architecture

    architecture = normalize_architecture(architecture)
    keras_backend = use_keras_backend(keras_backend)
    torch_device, keras_device, precision = _set_precision(device, keras_backend, dtype)
    reference_torch_device, _, _ = _set_precision(reference_device, keras_backend)

    from xlm.tf_backend import MODEL_CLASSES as KERAS_CLASSES
    from xlm.torch_backend import MODEL_CLASSES as TORCH_CLASSES

    inputs = make_inputs(config, os.fspath(tokenizer_dir or torch_dir), sentences)
    arrays = _model_inputs(inputs, architecture)

    torch_model = TORCH_CLASSES[architecture].from_pretrained(torch_dir).eval()
    reference = _run_torch(torch_model, arrays, reference_torch_device, "float32")
    torch_side = reference
    if dtype != "float32" or torch_device != reference_torch_device:
        torch_side = _run_torch(torch_model, arrays, torch_device, dtype)
    del torch_model
    _free_cuda_cache()

    keras_side = _run_keras(KERAS_CLASSES[architecture], keras_dir, arrays, keras_device, dtype, keras_backend)
    diffs = compare_outputs(reference["outputs"], keras_side["outputs"], atol, rtol)
    torch_diffs = [] if torch_side is reference else compare_outputs(
        reference["outputs"], torch_side["outputs"], atol, rtol)
    return ParityReport(
        torch_dir=os.fspath(torch_dir), keras_dir=os.fspath(keras_dir), architecture=architecture,
        requested_device=device, torch_device=torch_side["device"], keras_device=keras_side["device"],
        precision=precision, atol=atol, rtol=rtol,
        inputs={"description": inputs["description"], **{k: list(v.shape) for k, v in arrays.items()}},
        diffs=diffs, seconds=time.perf_counter() - start, versions=_versions(keras_backend),
        keras_backend=keras_backend, dtype=dtype, reference_device=reference["device"], torch_diffs=torch_diffs,
    )


def _free_cuda_cache() -> None:
    """Hand PyTorch's cached GPU memory back, so the Keras side (JAX especially) can use it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
