"""Parity cross-check: our PyTorch stack and our Keras stack on the same weights and inputs.

Both models run on tokenised sample sentences in several languages (padding, language ids,
token_type_ids, TLM-style restarted position ids) and every intermediate is compared: the
embedding output, each layer's hidden state and attention probabilities, and every output of the
head. The report gives max absolute and relative differences per tensor with pass / fail against
`atol + rtol * max|reference|`, as a table, as JSON and optionally as a PNG plot.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from xlm._io import atomic_path, atomic_write_text
from xlm.config import XLMConfig

__all__ = ["SAMPLE_SENTENCES", "TensorDiff", "ParityReport", "make_inputs", "run_parity", "compare_outputs"]

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
    """Everything a parity run measured (`table()`, `to_json()`, `plot()`)."""

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

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.diffs)

    @property
    def failures(self) -> list[TensorDiff]:
        return [d for d in self.diffs if not d.passed]

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
        lines = [
            f"parity: our PyTorch stack vs our Keras stack, {self.architecture}",
            f"  PyTorch weights: {self.torch_dir}",
            f"  Keras weights:   {self.keras_dir}",
            f"  device: requested {self.requested_device}; PyTorch ran on {self.torch_device}, "
            f"Keras on {self.keras_device}",
            "  precision: " + ", ".join(f"{k}={v}" for k, v in self.precision.items()),
            f"  inputs: {self.inputs.get('description', '')}",
            f"  tolerance: |diff| <= {self.atol:g} + {self.rtol:g} * max|reference|",
            "",
        ]
        width = max([len(d.name) for d in self.diffs] + [6])
        lines.append(f"  {'tensor':<{width}}  {'shape':<16}  {'max abs diff':>12}  {'max rel diff':>12}  result")
        lines.append("  " + "-" * (width + 16 + 12 + 12 + 14))
        for d in self.diffs:
            shape = "x".join(str(s) for s in d.shape) or "scalar"
            if d.mismatches is not None:
                values = f"{d.mismatches:>12d}  {'(mismatches)':>12}"
            else:
                values = f"{d.max_abs:>12.3e}  {d.max_rel:>12.3e}"
            lines.append(f"  {d.name:<{width}}  {shape:<16}  {values}  {'pass' if d.passed else 'FAIL'}")
        worst = max((d.max_abs for d in self.diffs if d.mismatches is None), default=0.0)
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(self.diffs)} tensors)"
        lines += ["", f"  {verdict}: {len(self.diffs)} tensors compared, largest difference {worst:.3e}, "
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
        ax.set_title(f"{self.architecture}: PyTorch vs Keras ({devices})", fontsize=9)
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


def _flatten(output: Any) -> dict[str, np.ndarray]:
    """Named numpy arrays of a model output: head outputs, hidden_states.i, attentions.i."""
    out: dict[str, np.ndarray] = {}
    for key, value in output.items():
        if value is None or key == "loss":
            continue
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                out[f"{key}.{i}"] = _numpy(item)
        else:
            out[key] = _numpy(value)
    return out


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


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


def _versions() -> dict[str, str]:
    import xlm

    versions = {"python": platform.python_version(), "numpy": np.__version__, "xlm": xlm.__version__}
    for module in ("torch", "tensorflow", "keras"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:  # pragma: no cover - both stacks are needed to get here
            versions[module] = "not installed"
    return versions


def _set_precision(device: str) -> tuple[Any, Any, dict[str, Any]]:
    """Torch device and TF device name for `device`, with TF32 off in both frameworks."""
    import tensorflow as tf
    import torch

    # Full float32 everywhere: TensorFlow enables TF32 by default on Ampere+, PyTorch for cuDNN.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    tf.config.experimental.enable_tensor_float_32_execution(False)
    if device == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("--device gpu: PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)")
        if not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device gpu: TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)")
        torch_device, tf_device = torch.device("cuda"), "/GPU:0"
    elif device == "cpu":
        torch_device, tf_device = torch.device("cpu"), "/CPU:0"
    else:
        raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'gpu'")
    precision = {
        "dtype": "float32",
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "tf tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled(),
    }
    return torch_device, tf_device, precision


def _device_name(kind: str, device: str) -> str:
    """A readable name of the device a tensor really lived on."""
    if "GPU" in device.upper() or device.startswith("cuda"):
        name = ""
        if kind == "torch":
            import torch

            name = torch.cuda.get_device_name(torch.device(device))
        else:
            import tensorflow as tf

            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            name = details.get("device_name", "")
        return f"{device} ({name})" if name else device
    return device


def run_parity(
    torch_dir: str | os.PathLike,
    keras_dir: str | os.PathLike | None = None,
    *,
    architecture: str | None = None,
    device: str = "cpu",
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    sentences: Sequence[tuple[str, str, tuple[str, str] | None]] = SAMPLE_SENTENCES,
    tokenizer_dir: str | os.PathLike | None = None,
) -> ParityReport:
    """Load `torch_dir` into our PyTorch stack and `keras_dir` (default: the same directory) into
    our Keras stack, run both on the sample sentences and compare every intermediate."""
    start = time.perf_counter()
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
    torch_device, tf_device, precision = _set_precision(device)

    import tensorflow as tf
    import torch

    from xlm.tf_backend import MODEL_CLASSES as KERAS_CLASSES
    from xlm.torch_backend import MODEL_CLASSES as TORCH_CLASSES

    inputs = make_inputs(config, os.fspath(tokenizer_dir or torch_dir), sentences)
    arrays = _model_inputs(inputs, architecture)
    flags = dict(output_hidden_states=True, output_attentions=True, return_dict=True)

    torch_model = TORCH_CLASSES[architecture].from_pretrained(torch_dir).to(torch_device).eval()
    with torch.no_grad():
        torch_out = torch_model(**{k: torch.from_numpy(v).to(torch_device) for k, v in arrays.items()}, **flags)
    torch_ran_on = str(next(iter(torch_out.values())).device)
    reference = _flatten(torch_out)
    del torch_model, torch_out

    with tf.device(tf_device):
        keras_model = KERAS_CLASSES[architecture].from_pretrained(keras_dir)
        keras_out = keras_model(**{k: tf.constant(v) for k, v in arrays.items()}, training=False, **flags)
    first = next(iter(keras_out.values()))
    keras_ran_on = first.device if hasattr(first, "device") else tf_device
    other = _flatten(keras_out)
    diffs = compare_outputs(reference, other, atol, rtol)
    return ParityReport(
        torch_dir=os.fspath(torch_dir), keras_dir=os.fspath(keras_dir), architecture=architecture,
        requested_device=device, torch_device=_device_name("torch", torch_ran_on),
        keras_device=_device_name("tf", keras_ran_on), precision=precision, atol=atol, rtol=rtol,
        inputs={"description": inputs["description"],
                **{k: list(v.shape) for k, v in arrays.items()}},
        diffs=diffs, seconds=time.perf_counter() - start, versions=_versions(),
    )
