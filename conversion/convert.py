"""Lossless weight conversion between PyTorch and Keras XLM checkpoints.

Directories: a `save_pretrained` directory of either stack (or of transformers 4.57.6) converts to
the other framework's layout - PyTorch (model.safetensors, or pytorch_model.bin) <-> Keras
(tf_model.h5 in transformers' TF layout). Tensors stream one at a time (safetensors' mmap reader,
h5py per dataset), so memory stays near one extra tensor; the output directory appears in one step
(a killed conversion leaves no output, or the old one under --force, and a hidden temporary
directory that the next conversion into the same place removes). Weights holding NaN or infinite
values are refused, by name, unless asked for.

In memory: `state_dict_to_keras` / `keras_to_state_dict` rename and transpose numpy weights through
the weight table; `torch_to_keras` / `keras_to_torch` turn a model of one stack into its twin.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from xlm._io import atomic_directory
from xlm.checkpoint import (
    FORMATS,
    FiniteCheck,
    find_checkpoint,
    open_state_dict,
    resolve_pretrained_dir,
    save_state_dict,
    transpose_2d,
)
from xlm.config import CONFIG_NAME, XLMConfig
from xlm.weights import (
    ARCHITECTURES,
    WeightMismatchError,
    check_keras_layout,
    match_state_dict,
    normalize_architecture,
    weight_specs,
)

__all__ = [
    "ConversionResult",
    "convert_checkpoint",
    "detect_architecture",
    "state_dict_to_keras",
    "keras_to_state_dict",
    "torch_to_keras",
    "keras_to_torch",
]

#: framework of each checkpoint format
FRAMEWORK_OF_FORMAT = {"safetensors": "pytorch", "bin": "pytorch", "h5": "keras"}
FRAMEWORKS = ("pytorch", "keras")


@dataclass
class ConversionResult:
    """What `convert_checkpoint` did (also printed by the command line)."""

    source: str
    output: str
    architecture: str
    source_format: str
    output_format: str
    tensors: int
    parameters: int
    bytes: int
    seconds: float
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"converted {self.architecture} ({self.parameters:,} parameters in {self.tensors} tensors, "
            f"{self.bytes / 1e6:.1f} MB) from {self.source_format} to {self.output_format} in "
            f"{self.seconds:.2f}s: {self.output}"
        )


# --- architecture -------------------------------------------------------------------------------


def _exact_match(state: Mapping[str, Any], config: XLMConfig, architecture: str):
    match = match_state_dict(weight_specs(config, architecture), state, config, architecture)
    ok = not (match.missing or match.unexpected or match.mismatched or match.fresh_head or match.unused_head)
    return ok, match


def detect_architecture(state: Mapping[str, Any], config: XLMConfig) -> str:
    """The architecture of a checkpoint: the one config.json names (which must then fit the tensors
    exactly, else WeightMismatchError says how not), or else the single one whose weight table the
    tensors fill exactly (ValueError if several do)."""
    declared = [normalize_architecture(a) for a in (config.architectures or []) if _known(a)]
    if declared:
        for architecture in declared:
            if _exact_match(state, config, architecture)[0]:
                return architecture
        _strict_match(state, config, declared[0], "the checkpoint does not fit config.json's architecture")
    fitting = [a for a in ARCHITECTURES if _exact_match(state, config, a)[0]]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        _strict_match(state, config, _closest(state, config), "no architecture fits the checkpoint; closest:")
    raise ValueError(
        f"the checkpoint fits several architectures ({', '.join(fitting)}) and config.json names none of "
        "them: choose one with --architecture"
    )


def _known(architecture: str) -> bool:
    try:
        normalize_architecture(architecture)
    except ValueError:
        return False
    return True


def _closest(state: Mapping[str, Any], config: XLMConfig) -> str:
    def errors(architecture: str) -> int:
        _, m = _exact_match(state, config, architecture)
        return len(m.missing) + len(m.unexpected) + len(m.mismatched) + len(m.fresh_head) + len(m.unused_head)

    return min(ARCHITECTURES, key=errors)


def _strict_match(state: Mapping[str, Any], config: XLMConfig, architecture: str, context: str) -> dict[str, Any]:
    """Every checkpoint tensor used exactly once, or WeightMismatchError listing the rest."""
    match = match_state_dict(weight_specs(config, architecture), state, config, architecture)
    if match.missing or match.unexpected or match.mismatched or match.fresh_head or match.unused_head:
        raise WeightMismatchError(
            match.missing + match.fresh_head, match.unexpected + match.unused_head, match.mismatched,
            f"{context} {architecture}",
        )
    return match.tensors


def _check_tied(tensors: Mapping[str, Any], config: XLMConfig, architecture: str) -> None:
    """A stored copy of a tied weight (pytorch_model.bin) must equal its source: it is not written."""
    for spec in weight_specs(config, architecture):
        if spec.tied_to is not None and spec.torch_name in tensors:
            copy, source = np.asarray(tensors[spec.torch_name]), np.asarray(tensors[spec.tied_to])
            if not np.array_equal(copy, source):
                raise ValueError(
                    f"{spec.torch_name} differs from {spec.tied_to}, to which the model ties it; "
                    "converting would lose it"
                )


# --- directories --------------------------------------------------------------------------------


def _weight_file_names(directory: str) -> set[str]:
    """Every weight or shard-index file in `directory` (of any format)."""
    names = set()
    for single, index in FORMATS.values():
        stem, suffix = os.path.splitext(single)
        for name in os.listdir(directory):
            if name in (single, index) or (name.startswith(stem + "-") and name.endswith(suffix)):
                names.add(name)
    return names


def convert_checkpoint(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    to: str | None = None,
    format: str | None = None,
    architecture: str | None = None,
    max_shard_size: int | str | None = None,
    force: bool = False,
    quiet: bool = False,
    check_finite: bool = True,
    **hub_kwargs: Any,
) -> ConversionResult:
    """Convert the checkpoint directory `source` into the new directory `output`.

    `to` is "keras" (tf_model.h5) or "pytorch" (model.safetensors; `format="bin"` for
    pytorch_model.bin); by default the framework the source is not in. `format` may also be given
    alone. The architecture comes from config.json or, failing that, from the tensor names. Every
    tensor must be used exactly once (else `WeightMismatchError`); other files (tokenizer,
    generation config) are copied. `output` must not exist unless `force`; it appears only once
    complete. With `check_finite` (the default), tensors holding NaN or infinite values are a
    `NonFiniteWeightsError` naming all of them, and nothing is written (each tensor is scanned once,
    as it streams through). A tqdm bar shows progress unless `quiet`.
    """
    start = time.perf_counter()
    source_dir = resolve_pretrained_dir(source, **hub_kwargs)
    if not os.path.isfile(os.path.join(source_dir, CONFIG_NAME)):
        raise FileNotFoundError(f"no {CONFIG_NAME} in {source_dir}: a model directory needs one")
    output_path = os.path.abspath(os.fspath(output))
    if os.path.abspath(source_dir) == output_path:
        raise ValueError(f"the output directory {output_path} is the source itself")
    if os.path.exists(output_path) and not force:
        raise FileExistsError(f"output directory {output_path} already exists (use --force / force=True to replace it)")
    config = XLMConfig.from_pretrained(source_dir)
    source_format, _ = find_checkpoint(source_dir)
    output_format = _output_format(source_format, to, format)

    with open_state_dict(source_dir, config, architecture or "XLMModel") as reader:
        architecture = normalize_architecture(architecture) if architecture else detect_architecture(reader, config)
        tensors = _strict_match(reader, config, architecture, f"converting {source_dir} as")
        _check_tied(tensors, config, architecture)
        stored = [tensors[s.torch_name] for s in weight_specs(config, architecture) if s.tied_to is None]
        total = sum(t.nbytes for t in stored)
        n_params = sum(int(np.prod(t.shape, dtype=np.int64)) for t in stored)
        finite = FiniteCheck()
        if check_finite:
            tensors = finite.wrap(tensors)
        bar = _progress(total, f"{source_format} -> {output_format}", quiet)
        try:
            with atomic_directory(output_path, force=force) as tmp:
                files = save_state_dict(
                    tensors, tmp, config, architecture, format=output_format,
                    max_shard_size=max_shard_size, progress=lambda _name, nbytes: bar.update(nbytes),
                )
                finite.raise_if_any(source_dir, "convert it anyway with --no-check-finite (check_finite=False)")
                skip = _weight_file_names(source_dir)
                for name in sorted(os.listdir(source_dir)):
                    path = os.path.join(source_dir, name)
                    if name not in skip and not name.startswith(".") and os.path.isfile(path):
                        shutil.copyfile(path, os.path.join(tmp, name))
        finally:
            bar.close()
    return ConversionResult(
        source=os.fspath(source_dir), output=output_path, architecture=architecture,
        source_format=source_format, output_format=output_format, tensors=len(stored),
        parameters=n_params, bytes=total, seconds=time.perf_counter() - start,
        files=sorted(os.path.basename(f) for f in files),
    )


def _output_format(source_format: str, to: str | None, format: str | None) -> str:
    if to is not None and to not in FRAMEWORKS:
        raise ValueError(f"unknown target framework {to!r}; expected 'keras' or 'pytorch'")
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown checkpoint format {format!r}; expected one of {', '.join(FORMATS)}")
    if format is not None:
        if to is not None and FRAMEWORK_OF_FORMAT[format] != to:
            raise ValueError(f"format {format!r} is a {FRAMEWORK_OF_FORMAT[format]} format, not a {to} one")
        return format
    if to is None:
        to = "pytorch" if FRAMEWORK_OF_FORMAT[source_format] == "keras" else "keras"
    return "h5" if to == "keras" else "safetensors"


def _progress(total: int, description: str, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                disable=quiet, leave=False, dynamic_ncols=True)


# --- in memory ----------------------------------------------------------------------------------


def state_dict_to_keras(state: Mapping[str, Any], config: XLMConfig, architecture: str) -> dict[str, np.ndarray]:
    """PyTorch-named numpy weights -> our Keras weights by `keras_name`, kernels transposed."""
    architecture = normalize_architecture(architecture)
    check_keras_layout(config, architecture)
    tensors = _strict_match(state, config, architecture, "converting to Keras:")
    out = {}
    for spec in weight_specs(config, architecture):
        if spec.keras_name is None:
            continue
        value = np.asarray(tensors[spec.torch_name])
        out[spec.keras_name] = transpose_2d(value) if spec.transpose else value
    return out


def keras_to_state_dict(weights: Mapping[str, Any], config: XLMConfig, architecture: str) -> dict[str, np.ndarray]:
    """Our Keras weights by `keras_name` -> PyTorch-named numpy weights (tied ones left out)."""
    architecture = normalize_architecture(architecture)
    specs = weight_specs(config, architecture)
    wanted = {s.keras_name: s for s in specs if s.keras_name is not None}
    missing = [k for k in wanted if k not in weights]
    unexpected = [k for k in weights if k not in wanted]
    mismatched = [(k, tuple(np.shape(weights[k])), wanted[k].keras_shape)
                  for k in wanted if k in weights and tuple(np.shape(weights[k])) != wanted[k].keras_shape]
    if missing or unexpected or mismatched:
        raise WeightMismatchError(missing, unexpected, mismatched, f"converting Keras weights of {architecture}")
    out = {}
    for name, spec in wanted.items():
        value = np.asarray(weights[name])
        out[spec.torch_name] = transpose_2d(value) if spec.transpose else value
    return out


def torch_to_keras(model: Any) -> Any:
    """Our Keras twin of one of our PyTorch models, with the same weights (bit for bit)."""
    from xlm.tf_backend import MODEL_CLASSES

    architecture = model.architecture
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    keras_model = MODEL_CLASSES[architecture](XLMConfig.from_dict(model.config.to_dict()))
    keras_model.load_state_dict(_strict_match(state, model.config, architecture, "converting"))
    return keras_model


def keras_to_torch(model: Any) -> Any:
    """Our PyTorch twin of one of our Keras models, with the same weights (bit for bit)."""
    from xlm.torch_backend import MODEL_CLASSES

    architecture = model.architecture
    torch_model = MODEL_CLASSES[architecture](XLMConfig.from_dict(model.config.to_dict()))
    torch_model.load_weights(_strict_match(model.state_dict(), model.config, architecture, "converting"))
    return torch_model.eval()
