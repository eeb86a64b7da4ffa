"""Checkpoint files: read and write XLM weights in PyTorch names and layouts, without a framework.

Formats, in the order a directory is searched:
  - `model.safetensors`, or shards listed in `model.safetensors.index.json` (numpy + safetensors),
  - `pytorch_model.bin`, or shards listed in `pytorch_model.bin.index.json` (needs torch; always
    `weights_only=True`),
  - `tf_model.h5`, or shards listed in `tf_model.h5.index.json`: transformers' TensorFlow layout,
    read and written with h5py, names and transposes taken from the weight table (`xlm.weights`).

Tensors are opened lazily (`open_state_dict`), so a conversion holds about one tensor at a time;
`load_state_dict` reads them all, optionally refusing NaN or infinite values (`check_finite`).
Writing (`save_state_dict`, `save_pretrained_directory`) is atomic per directory: the new files are
written into a hidden sibling directory that then replaces the target in one step (`xlm._io`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from xlm._io import atomic_path, atomic_save_directory, atomic_write_text, is_atomic_tmp_dir
from xlm.config import XLMConfig
from xlm.weights import (
    ARCHITECTURES,
    BASE_MODEL_PREFIX,
    WeightSpec,
    check_keras_layout,
    match_state_dict,
    normalize_architecture,
    weight_specs,
)

__all__ = [
    "CheckpointError",
    "NonFiniteWeightsError",
    "FiniteCheck",
    "LazyTensor",
    "StateDictReader",
    "find_checkpoint",
    "resolve_pretrained_dir",
    "open_state_dict",
    "load_state_dict",
    "save_state_dict",
    "save_pretrained_directory",
    "keras_model_name",
    "transpose_2d",
    "FORMATS",
    "SAFE_WEIGHTS_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "WEIGHTS_INDEX_NAME",
    "TF2_WEIGHTS_NAME",
    "TF2_WEIGHTS_INDEX_NAME",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TF2_WEIGHTS_NAME = "tf_model.h5"
TF2_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"

#: format -> (single file name, index file name)
FORMATS = {
    "safetensors": (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME),
    "bin": (WEIGHTS_NAME, WEIGHTS_INDEX_NAME),
    "h5": (TF2_WEIGHTS_NAME, TF2_WEIGHTS_INDEX_NAME),
}
_SUFFIX_FORMAT = {".safetensors": "safetensors", ".bin": "bin", ".pt": "bin", ".pth": "bin", ".h5": "h5"}

# Written into tf_model.h5 root attributes, as tf-keras does; informational only (no reader checks it).
_H5_BACKEND = "tensorflow"
_H5_KERAS_VERSION = "2.21.0"
# tf-keras splits an attribute into numbered chunks above this many bytes (its HDF5 header limit).
_H5_ATTRIBUTE_LIMIT = 64512

_SAFETENSORS_DTYPES = {
    "F64": np.dtype("float64"), "F32": np.dtype("float32"), "F16": np.dtype("float16"),
    "I64": np.dtype("int64"), "I32": np.dtype("int32"), "I16": np.dtype("int16"), "I8": np.dtype("int8"),
    "U64": np.dtype("uint64"), "U32": np.dtype("uint32"), "U16": np.dtype("uint16"), "U8": np.dtype("uint8"),
    "BOOL": np.dtype("bool"),
}


class CheckpointError(ValueError):
    """A checkpoint file cannot be read (corrupted, truncated, unsafe or in an unknown layout)."""


class NonFiniteWeightsError(CheckpointError):
    """A checkpoint holds NaN or infinite weights; `found` maps each such tensor's name to
    (NaN count, infinity count, size)."""

    def __init__(self, source: str, found: Mapping[str, tuple[int, int, int]], hint: str = "") -> None:
        self.source, self.found = source, dict(found)
        shown = [f"{name} ({nan:,} NaN, {inf:,} inf of {size:,})" for name, (nan, inf, size) in self.found.items()]
        if len(shown) > 10:
            shown = shown[:10] + [f"and {len(shown) - 10} more"]
        super().__init__(
            f"{source}: {len(self.found)} tensor{'s' if len(self.found) != 1 else ''} hold NaN or infinite values: "
            f"{'; '.join(shown)}. Such weights give NaN or infinite outputs (a diverged or damaged checkpoint)"
            + (f"; {hint}" if hint else "")
        )


#: elements per isfinite call: a small boolean temporary, still vectorised
_FINITE_BLOCK = 1 << 18


def _nonfinite_counts(array: np.ndarray) -> tuple[int, int] | None:
    """(NaN count, infinity count) of a floating array that is not all finite, else None."""
    if array.dtype.kind not in "fc" and array.dtype.name != "bfloat16":
        return None
    flat = np.ravel(array)
    for start in range(0, flat.size, _FINITE_BLOCK):
        if not np.isfinite(flat[start:start + _FINITE_BLOCK]).all():
            nan = int(np.count_nonzero(np.isnan(flat)))
            return nan, int(flat.size - nan - np.count_nonzero(np.isfinite(flat)))
    return None


class FiniteCheck:
    """Collects the tensors holding NaN or infinite values among those it is shown, one pass each.

    `check(name, array)` looks at one loaded array; `wrap(tensors)` gives lazy tensors that are
    checked as they load (for streamed conversions); `raise_if_any(source, hint)` raises
    `NonFiniteWeightsError` naming every tensor found.
    """

    def __init__(self) -> None:
        self.found: dict[str, tuple[int, int, int]] = {}

    def check(self, name: str, array: np.ndarray) -> np.ndarray:
        counts = _nonfinite_counts(array)
        if counts is not None:
            self.found[name] = (*counts, int(array.size))
        return array

    def wrap(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        def checked(name: str, tensor: Any) -> LazyTensor:
            return LazyTensor(tensor.shape, tensor.dtype, lambda: self.check(name, np.asarray(tensor)),
                              getattr(tensor, "source", name))

        return {name: checked(name, tensor) for name, tensor in tensors.items()}

    def raise_if_any(self, source: str, hint: str = "") -> None:
        if self.found:
            raise NonFiniteWeightsError(source, self.found, hint)


# --- locating checkpoints -----------------------------------------------------------------------


#: transformers' from_pretrained options that change nothing for these models: accepted and dropped,
#: so that ported calls run
NO_EFFECT_LOADING_OPTIONS = frozenset(
    {"trust_remote_code", "low_cpu_mem_usage", "use_safetensors", "from_pt", "from_tf", "_fast_init"}
)


def pretrained_config(model_name: str, directory: str, config: XLMConfig | None, kwargs: Mapping[str, Any]) -> XLMConfig:
    """The config of a `from_pretrained` call: `config` (else `directory`'s config.json) with the
    keyword arguments that name its fields (e.g. `num_labels=3`) applied.

    transformers' loading options that change nothing here are dropped; any other keyword is a
    TypeError, as transformers gives for its XLM classes (a misspelt option must not land in
    config.json).
    """
    if config is not None and not isinstance(config, XLMConfig):
        raise TypeError(f"config must be an xlm.XLMConfig, got {type(config).__module__}.{type(config).__name__}")
    config = XLMConfig.from_pretrained(directory) if config is None else copy.deepcopy(config)
    fields = set(config.to_dict()) | set(XLMConfig.attribute_map) | {"num_labels"}
    unknown = sorted(k for k in kwargs if k not in fields and k not in NO_EFFECT_LOADING_OPTIONS)
    if unknown:
        raise TypeError(
            f"{model_name}.from_pretrained got unexpected keyword arguments: {', '.join(unknown)} "
            "(neither XLMConfig fields nor loading options)"
        )
    for key, value in kwargs.items():
        if key in fields:
            setattr(config, key, value)
    config.validate()
    return config


def resolve_pretrained_dir(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> str:
    """A local model directory for `name_or_path`: a local directory as is, else a Hub download.

    Hub repositories are fetched with `huggingface_hub` (imported only then): config.json, the
    preferred weight file (with its shards) and the tokenizer files. `hub_kwargs` (revision,
    cache_dir, local_files_only, token) go to the download.
    """
    from xlm.hub import resolve_file

    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return name
    if os.path.isfile(name):
        raise NotADirectoryError(f"{name!r} is a file; expected a model directory (or Hub repository id)")
    config_path = resolve_file(name, "config.json", **hub_kwargs)
    for fmt in FORMATS:
        single, index = FORMATS[fmt]
        if resolve_file(name, single, required=False, **hub_kwargs) is not None:
            break
        index_path = resolve_file(name, index, required=False, **hub_kwargs)
        if index_path is not None:
            for shard in sorted(set(_read_index(index_path).values())):
                resolve_file(name, shard, **hub_kwargs)
            break
    else:
        raise FileNotFoundError(
            f"Hub repository {name!r} holds no weights ({', '.join(n for pair in FORMATS.values() for n in pair)})"
        )
    for optional in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        resolve_file(name, optional, required=False, **hub_kwargs)
    return os.path.dirname(config_path)


def find_checkpoint(path: str | os.PathLike) -> tuple[str, list[str]]:
    """(format, weight files) of a checkpoint directory or file, in the module's preference order.

    A directory is searched for model.safetensors, its index, pytorch_model.bin, its index,
    tf_model.h5 and its index; a file is taken by its suffix (an index `.json` by what it indexes).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for fmt, (single, index) in FORMATS.items():
            if os.path.isfile(os.path.join(path, single)):
                return fmt, [os.path.join(path, single)]
            if os.path.isfile(os.path.join(path, index)):
                return fmt, _shard_files(os.path.join(path, index))
        present = ", ".join(sorted(os.listdir(path))) or "nothing"
        expected = ", ".join(n for pair in FORMATS.values() for n in pair)
        raise FileNotFoundError(f"no checkpoint in {path}: expected one of {expected}; found {present}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint file or directory: {path}")
    if path.endswith(".index.json"):
        inner = os.path.splitext(path[: -len(".index.json")])[1]
        if inner in _SUFFIX_FORMAT:
            return _SUFFIX_FORMAT[inner], _shard_files(path)
    suffix = os.path.splitext(path)[1]
    if suffix not in _SUFFIX_FORMAT:
        raise CheckpointError(
            f"{path}: unknown checkpoint file type {suffix!r} (expected .safetensors, .bin, .h5 or an .index.json)"
        )
    return _SUFFIX_FORMAT[suffix], [path]


def _read_index(index_path: str) -> dict[str, str]:
    """weight_map of a transformers shard index (tensor name -> shard file name)."""
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index_path} is not a valid shard index: {err}") from None
    return weight_map


def _shard_files(index_path: str) -> list[str]:
    directory = os.path.dirname(index_path)
    files = []
    for shard in sorted(set(_read_index(index_path).values())):
        if os.path.basename(shard) != shard:
            raise CheckpointError(f"{index_path} names shard {shard!r} outside its directory")
        full = os.path.join(directory, shard)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"shard {shard} listed in {index_path} does not exist")
        files.append(full)
    return files


# --- lazy tensors -------------------------------------------------------------------------------


class LazyTensor:
    """A tensor of an open checkpoint: shape and dtype now, values on `load()` (or np.asarray)."""

    __slots__ = ("shape", "dtype", "_load", "source")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, load: Callable[[], np.ndarray], source: str) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self._load = load
        self.source = source  # file it lives in, for error messages

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def load(self) -> np.ndarray:
        """Read the values (a new array, in the PyTorch layout)."""
        try:
            array = self._load()
        except CheckpointError:
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure means a damaged file
            raise CheckpointError(f"{self.source}: cannot read a tensor (corrupted file?): {_one_line(err)}") from err
        if tuple(array.shape) != self.shape:
            raise CheckpointError(f"{self.source}: a tensor declared as {list(self.shape)} reads as {list(array.shape)}")
        return array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.load()
        return array if dtype is None else array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazyTensor(shape={list(self.shape)}, dtype={self.dtype})"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


class StateDictReader(Mapping[str, LazyTensor]):
    """An open checkpoint as a read-only mapping from PyTorch names to `LazyTensor`s.

    Attributes: `format` ('safetensors', 'bin', 'h5'), `files` (the weight files), `metadata`
    (safetensors metadata of the first file, else {}). Use as a context manager to close the files.
    """

    def __init__(self, fmt: str, files: list[str], tensors: dict[str, LazyTensor],
                 closers: list[Callable[[], None]], metadata: dict[str, str]) -> None:
        self.format, self.files, self.metadata = fmt, files, metadata
        self._tensors = tensors
        self._closers = closers

    def __getitem__(self, name: str) -> LazyTensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def close(self) -> None:
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()

    def __enter__(self) -> "StateDictReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_state_dict(path_or_dir: str | os.PathLike, config: XLMConfig, architecture: str) -> StateDictReader:
    """Open a checkpoint lazily; keys are PyTorch names, values `LazyTensor`s in PyTorch layout.

    Keys of PyTorch checkpoints are kept as stored (a base-model checkpoint has no `transformer.`
    prefix); TensorFlow names are mapped through the weight table to `architecture`'s PyTorch names,
    unknown ones kept as they are so that `match_state_dict` reports them. Nothing is checked
    against the model here: pass the result to `xlm.weights.match_state_dict`.
    """
    fmt, files = find_checkpoint(path_or_dir)
    reader = StateDictReader(fmt, files, {}, [], {})
    try:
        for file in files:
            if fmt == "safetensors":
                _open_safetensors(file, reader, config, architecture)
            elif fmt == "bin":
                _open_bin(file, reader)
            else:
                _open_h5(file, reader, config, architecture)
    except BaseException:
        reader.close()
        raise
    return reader


def load_state_dict(path_or_dir: str | os.PathLike, config: XLMConfig, architecture: str, *,
                    check_finite: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint directory or file, by PyTorch name, in PyTorch layout.

    See `open_state_dict` for the names; check the result with `xlm.weights.match_state_dict`.
    With `check_finite`, a tensor holding NaN or infinite values is a `NonFiniteWeightsError`
    naming every such tensor (each array is scanned once, right after it is read).
    """
    finite = FiniteCheck()
    with open_state_dict(path_or_dir, config, architecture) as reader:
        if not check_finite:
            return {name: tensor.load() for name, tensor in reader.items()}
        state = {name: finite.check(name, tensor.load()) for name, tensor in reader.items()}
    finite.raise_if_any(os.fspath(path_or_dir), "pass check_finite=False to load it anyway")
    return state


def _add(reader: StateDictReader, name: str, tensor: LazyTensor) -> None:
    if name in reader._tensors:
        raise CheckpointError(f"tensor {name!r} appears twice ({reader._tensors[name].source} and {tensor.source})")
    reader._tensors[name] = tensor


# --- safetensors --------------------------------------------------------------------------------


def _open_safetensors(file: str, reader: StateDictReader, config: XLMConfig, architecture: str) -> None:
    from safetensors import safe_open

    # safe_open validates the file (header, offsets, size); the bytes are then read with plain file
    # reads, not through its memory map, so a streamed conversion keeps one tensor resident, not
    # every page of the file it has touched.
    try:
        with safe_open(file, framework="np") as handle:
            metadata = handle.metadata() or {}
        stream = open(file, "rb")
    except Exception as err:  # noqa: BLE001 - SafetensorError and OSError alike
        raise CheckpointError(
            f"{file} is not a readable safetensors file (truncated or corrupted?): {_one_line(err)}"
        ) from None
    reader._closers.append(stream.close)
    header_len = int.from_bytes(stream.read(8), "little")
    header = json.loads(stream.read(header_len))
    header.pop("__metadata__", None)
    if not reader.metadata:
        reader.metadata = dict(metadata)
    if metadata.get("format") not in (None, "pt", "tf", "np"):
        raise CheckpointError(f"{file} holds {metadata['format']!r} weights; only PyTorch and TensorFlow ones are supported")
    mapper = _TFNameMapper(config, architecture) if metadata.get("format") == "tf" else None
    for key, entry in header.items():
        dtype = _safetensors_dtype(entry["dtype"], file, key)
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        load = _file_loader(stream, 8 + header_len + begin, end - begin, dtype, shape)
        if mapper is None:
            _add(reader, key, LazyTensor(shape, dtype, load, file))
        else:
            name, transpose = mapper(key)
            _add(reader, name, _maybe_transposed(shape, dtype, load, file, transpose))


def _safetensors_dtype(dtype_name: str, file: str, key: str) -> np.dtype:
    if dtype_name in _SAFETENSORS_DTYPES:
        return _SAFETENSORS_DTYPES[dtype_name]
    if dtype_name == "BF16":
        return _bfloat16(f"{file}: tensor {key!r} is bfloat16")
    raise CheckpointError(f"{file}: tensor {key!r} has dtype {dtype_name}, which numpy cannot hold")


def _bfloat16(context: str) -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:
        raise CheckpointError(f"{context}; reading bfloat16 without torch needs `pip install ml_dtypes`") from None
    return np.dtype(ml_dtypes.bfloat16)


def _file_loader(stream: Any, offset: int, nbytes: int, dtype: np.dtype, shape: tuple[int, ...]) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        array = np.empty(shape, dtype=dtype.newbyteorder("<"))
        stream.seek(offset)
        view = memoryview(array.reshape(-1).view(np.uint8))
        got = 0
        while got < nbytes:
            n = stream.readinto(view[got:])
            if not n:
                raise CheckpointError(f"{stream.name}: file ends inside a tensor (truncated?)")
            got += n
        return array if dtype.byteorder != ">" else array.astype(dtype)

    return load


def _safetensors_dtype_name(dtype: np.dtype) -> str:
    if dtype.name == "bfloat16":
        return "BF16"
    for name, candidate in _SAFETENSORS_DTYPES.items():
        if candidate == dtype:
            return name
    raise ValueError(f"dtype {dtype} cannot be stored in safetensors")


def _write_safetensors(path: str, tensors: list[tuple[str, Any]], metadata: dict[str, str],
                       progress: Callable[[str, int], None] | None) -> None:
    """Write a safetensors file one tensor at a time (the format's header first, then raw bytes)."""
    # safetensors' own writer orders tensors by alignment, then name; do the same so that files
    # round-trip byte for byte.
    tensors = sorted(tensors, key=lambda item: (-np.dtype(item[1].dtype).itemsize, item[0]))
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, value in tensors:
        nbytes = int(np.prod(value.shape, dtype=np.int64)) * np.dtype(value.dtype).itemsize
        header[name] = {
            "dtype": _safetensors_dtype_name(np.dtype(value.dtype)),
            "shape": [int(d) for d in value.shape],
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(len(encoded).to_bytes(8, "little"))
            f.write(encoded)
            for (name, _), array in _prefetched(tensors, _little_endian):
                f.write(memoryview(array.reshape(-1).view(np.uint8)))
                if progress is not None:
                    progress(name, array.nbytes)
                del array


def _little_endian(item: tuple[str, Any]) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(item[1]))
    return array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array


def _prefetched(items: list, prepare: Callable[[Any], np.ndarray]) -> Iterator[tuple[Any, np.ndarray]]:
    """(item, prepare(item)) in order, preparing the next item in a worker thread while the caller
    writes the current one: reading and transposing overlap with writing, at one tensor ahead."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlm-checkpoint") as pool:
        future = pool.submit(prepare, items[0])
        for i, item in enumerate(items):
            array = future.result()
            future = pool.submit(prepare, items[i + 1]) if i + 1 < len(items) else None
            try:
                yield item, array
            except GeneratorExit:
                if future is not None:
                    future.cancel()
                raise
            del array


# --- pytorch_model.bin --------------------------------------------------------------------------


def _torch() -> Any:
    from xlm._backend import require

    return require("torch")


def _open_bin(file: str, reader: StateDictReader) -> None:
    torch = _torch()
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # noqa: BLE001
        if isinstance(err, ImportError):
            raise
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe:
            raise CheckpointError(
                f"{file} holds Python objects other than tensors ({unsafe.group(1)}); "
                "refusing to unpickle them (weights_only=True)"
            ) from None
        raise CheckpointError(
            f"{file} is not a readable PyTorch checkpoint (truncated or corrupted?): {_one_line(err)}"
        ) from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{file} holds a {type(state).__name__}, not a state dict of tensors")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{file}: entry {key!r} is a {type(value).__name__}, not a tensor")
        _add(reader, key, LazyTensor(tuple(value.shape), _torch_numpy_dtype(value, file, key),
                                     _torch_loader(value), file))


def _torch_numpy_dtype(tensor: Any, file: str, key: str) -> np.dtype:
    torch = _torch()
    if tensor.dtype == torch.bfloat16:
        return _bfloat16(f"{file}: tensor {key!r} is bfloat16")
    try:
        return np.dtype(torch.empty(0, dtype=tensor.dtype).numpy().dtype)
    except TypeError:
        raise CheckpointError(f"{file}: tensor {key!r} has dtype {tensor.dtype}, which numpy cannot hold") from None


def _torch_loader(tensor: Any) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        torch = _torch()
        t = tensor.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(_bfloat16("bfloat16")).copy()
        return t.numpy().copy()

    return load


def _to_torch(array: np.ndarray) -> Any:
    torch = _torch()
    array = np.ascontiguousarray(array)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


# --- tf_model.h5 --------------------------------------------------------------------------------


def _unique_tf_table(config: XLMConfig) -> dict[str, WeightSpec]:
    """h5_name -> spec (head-model naming) over every architecture's table."""
    table: dict[str, WeightSpec] = {}
    for arch in ARCHITECTURES:
        if arch == "XLMModel":
            continue  # its base weights are the head models' with the prefix removed
        for spec in weight_specs(config, arch):
            if spec.h5_name is not None:
                table.setdefault(spec.h5_name, spec)
    return table


class _TFNameMapper:
    """Maps TensorFlow weight names ('model/transformer/embeddings/weight:0' or without the model
    name) to (PyTorch name of `architecture`, transpose?) through the weight table."""

    def __init__(self, config: XLMConfig, architecture: str) -> None:
        self.table = _unique_tf_table(config)
        self.is_base = normalize_architecture(architecture) == "XLMModel"

    def __call__(self, tf_name: str, strip_model_name: bool = False) -> tuple[str, bool]:
        name = tf_name[:-2] if tf_name.endswith(":0") else tf_name
        if strip_model_name and "/" in name:
            name = name.split("/", 1)[1]
        spec = self.table.get(name)
        if spec is None:
            return name, False  # unknown: kept, so that match_state_dict reports it
        torch_name = spec.torch_name
        prefix = BASE_MODEL_PREFIX + "."
        if self.is_base and torch_name.startswith(prefix):
            torch_name = torch_name[len(prefix):]
        return torch_name, spec.transpose


def _maybe_transposed(shape: tuple[int, ...], dtype: np.dtype, load: Callable[[], np.ndarray],
                      source: str, transpose: bool) -> LazyTensor:
    if not transpose:
        return LazyTensor(shape, dtype, load, source)
    return LazyTensor(tuple(reversed(shape)), dtype, lambda: transpose_2d(load()), source)


def _h5_attribute_list(obj: Any, name: str) -> list[str] | None:
    """A list-of-strings attribute as tf-keras writes it (possibly split into name0, name1, ...)."""
    if name in obj.attrs:
        values = list(obj.attrs[name])
    elif f"{name}0" in obj.attrs:
        values, chunk = [], 0
        while f"{name}{chunk}" in obj.attrs:
            values.extend(obj.attrs[f"{name}{chunk}"])
            chunk += 1
    else:
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _h5_set_attribute_list(obj: Any, name: str, values: list[str]) -> None:
    encoded = [v.encode("utf-8") for v in values]
    data = np.asarray(encoded)
    chunks = 1
    while any(part.nbytes > _H5_ATTRIBUTE_LIMIT for part in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        obj.attrs[name] = encoded  # a list: h5py stores variable-length strings, as tf-keras does
    else:
        for i, part in enumerate(np.array_split(data, chunks)):
            obj.attrs[f"{name}{i}"] = part


def _open_h5(file: str, reader: StateDictReader, config: XLMConfig, architecture: str) -> None:
    import h5py

    try:
        handle = h5py.File(file, "r")
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{file} is not a readable HDF5 file (truncated or corrupted?): {_one_line(err)}") from None
    reader._closers.append(handle.close)
    mapper = _TFNameMapper(config, architecture)
    try:
        layer_names = _h5_attribute_list(handle, "layer_names")
        if layer_names is None:
            raise CheckpointError(
                f"{file} is not a tf_model.h5 in transformers' layout (no 'layer_names' attribute at its root)"
            )
        seen: set[str] = set()
        for layer in layer_names:
            if layer not in handle:
                raise CheckpointError(f"{file}: layer {layer!r} is listed in layer_names but absent")
            obj = handle[layer]
            if isinstance(obj, h5py.Dataset):
                # transformers' sharded layout: one dataset per weight, named without the model name
                entries = [(layer, obj, False)]
            else:
                weight_names = _h5_attribute_list(obj, "weight_names") or []
                entries = []
                for weight in weight_names:
                    if weight not in obj:
                        raise CheckpointError(f"{file}: weight {weight!r} of layer {layer!r} is listed but absent")
                    entries.append((weight, obj[weight], True))
            for weight, dataset, strip in entries:
                name, transpose = mapper(weight, strip_model_name=strip)
                if name in seen:
                    continue  # tied weights are stored once per layer that uses them
                seen.add(name)
                shape = tuple(dataset.shape)
                dtype = dataset.dtype
                _add(reader, name, _maybe_transposed(shape, dtype, _h5_loader(dataset), file, transpose))
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{file} cannot be read as a tf_model.h5 (corrupted?): {_one_line(err)}") from None


def _h5_loader(dataset: Any) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(dataset[()])


def _snake_case(name: str) -> str:
    """tf-keras' default layer name for a class name ('TFXLMWithLMHeadModel' -> 'tfxlm_with_lm_head_model')."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_model_name(architecture: str) -> str:
    """The model-name prefix transformers' TF class gives its weights in tf_model.h5."""
    return _snake_case("TF" + normalize_architecture(architecture))


def _write_h5(path: str, specs: list[WeightSpec], tensors: Mapping[str, Any], architecture: str,
              progress: Callable[[str, int], None] | None) -> None:
    """tf_model.h5 as tf-keras' save_weights writes it for transformers' TF class."""
    import h5py

    model_name = keras_model_name(architecture)
    by_torch = {s.torch_name: s for s in specs}
    # layer -> [(h5 weight name, spec whose tensor it holds)], layers in model order
    layers: dict[str, list[tuple[str, WeightSpec]]] = {}
    for spec in _keras_creation_order(specs):
        source = by_torch[spec.tied_to] if spec.tied_to else spec
        if source.h5_name is None:
            continue
        layer = (_tied_layer(spec, specs) if spec.tied_to else spec.h5_name.split("/", 1)[0])
        if layer is None:
            continue
        layers.setdefault(layer, []).append((f"{model_name}/{source.h5_name}:0", source))
    for layer, entries in layers.items():  # a layer's own weights come before the ones it borrows
        entries.sort(key=lambda entry: not entry[1].h5_name.startswith(layer + "/"))
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _h5_set_attribute_list(f, "layer_names", list(layers))
            f.attrs["backend"] = _H5_BACKEND.encode("utf-8")
            f.attrs["keras_version"] = _H5_KERAS_VERSION.encode("utf-8")
            for layer in sorted(layers):
                _h5_set_attribute_list(f.create_group(layer), "weight_names", [w for w, _ in layers[layer]])
            order = [(layer, weight, spec) for layer in sorted(layers) for weight, spec in layers[layer]]
            prepare = lambda entry: _keras_layout(np.asarray(tensors[entry[2].torch_name]), entry[2])  # noqa: E731
            for (layer, weight, spec), array in _prefetched(order, prepare):
                f[layer].create_dataset(weight, data=array)
                if progress is not None:
                    progress(spec.torch_name, array.nbytes)
                del array
            _h5_set_attribute_list(f.create_group("top_level_model_weights"), "weight_names", [])


def _write_h5_shard(path: str, entries: list[tuple[str, WeightSpec]], tensors: Mapping[str, Any],
                    progress: Callable[[str, int], None] | None) -> None:
    """One shard of transformers' sharded TF layout: datasets named by weight, no model name."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            names = []
            prepare = lambda entry: _keras_layout(np.asarray(tensors[entry[1].torch_name]), entry[1])  # noqa: E731
            for (weight, spec), array in _prefetched(sorted(entries, key=lambda e: e[0]), prepare):
                f.create_dataset(weight, data=array)
                names.append(weight)
                if progress is not None:
                    progress(spec.torch_name, array.nbytes)
                del array
            _h5_set_attribute_list(f, "layer_names", names)


def _keras_creation_order(specs: list[WeightSpec]) -> list[WeightSpec]:
    """Specs in the order tf-keras lists the weights: transformers' TF main layer builds every
    layer of one kind (attentions_._0, attentions_._1, ...) before the next kind (layer_norm1_._0 ...)."""
    families: dict[str, int] = {}

    def family(spec: WeightSpec) -> int:
        name = spec.h5_name or spec.torch_name
        key = re.sub(r"_\._\d+", "", "/".join(name.split("/")[:2]))
        return families.setdefault(key, len(families))

    return sorted(specs, key=family)


def _tied_layer(spec: WeightSpec, specs: list[WeightSpec]) -> str | None:
    """The Keras layer that reuses a tied tensor: the one holding its module's other weights."""
    module = spec.torch_name.rsplit(".", 1)[0] + "."
    for other in specs:
        if other is not spec and other.torch_name.startswith(module) and other.h5_name:
            return other.h5_name.split("/", 1)[0]
    return None


def _keras_layout(array: np.ndarray, spec: WeightSpec) -> np.ndarray:
    return transpose_2d(array) if spec.transpose else array


def transpose_2d(array: np.ndarray, block: int = 256) -> np.ndarray:
    """A contiguous transpose of a matrix, in row blocks: about twice as fast as
    np.ascontiguousarray(array.T) on large matrices, which walks memory column by column."""
    array = np.asarray(array)
    if array.ndim != 2 or array.size < 1 << 16:
        return np.ascontiguousarray(array.T)
    rows, cols = array.shape
    out = np.empty((cols, rows), dtype=array.dtype)
    for start in range(0, rows, block):
        out[:, start:start + block] = array[start:start + block].T
    return out


# --- writing ------------------------------------------------------------------------------------


def _parse_size(size: int | str) -> int:
    """Bytes in `size`: an int, or '500KB', '5MB', '10GB', '2GiB' as transformers accepts."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*", str(size), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"max_shard_size must be an int or like '500MB' / '2GiB', got {size!r}")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    powers = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    if unit not in powers:
        raise ValueError(f"max_shard_size has an unknown unit {match.group(2)!r}")
    return int(number * powers[unit])


def _nbytes(value: Any) -> int:
    return int(np.prod(value.shape, dtype=np.int64)) * np.dtype(value.dtype).itemsize


def _split_shards(names: list[str], sizes: dict[str, int], max_bytes: int | None) -> list[list[str]]:
    """Consecutive groups of at most max_bytes (a bigger tensor gets a shard of its own)."""
    if max_bytes is None:
        return [list(names)]
    shards: list[list[str]] = [[]]
    current = 0
    for name in names:
        if shards[-1] and current + sizes[name] > max_bytes:
            shards.append([])
            current = 0
        shards[-1].append(name)
        current += sizes[name]
    return shards


def _shard_name(filename: str, index: int, count: int) -> str:
    stem, suffix = os.path.splitext(filename)
    return f"{stem}-{index + 1:05d}-of-{count:05d}{suffix}"


def save_state_dict(
    state: Mapping[str, Any],
    directory: str | os.PathLike,
    config: XLMConfig,
    architecture: str,
    format: str = "safetensors",
    max_shard_size: int | str | None = None,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> list[str]:
    """Write `state` (PyTorch names and layouts) into `directory`; returns the files written.

    The state must match `architecture` exactly (else `WeightMismatchError` lists what is missing,
    unexpected or mis-shaped); values may be numpy arrays or anything `np.asarray` accepts with a
    `shape` and `dtype` (e.g. `LazyTensor`s, read one at a time). Formats:
      - "safetensors": model.safetensors, tied weights omitted, metadata {"format": "pt"};
      - "bin": pytorch_model.bin with the tied `pred_layer.proj.weight` (needs torch);
      - "h5": tf_model.h5 in transformers' TF layout (the embedding repeated in the LM head layer).
    With `max_shard_size` (bytes or '5MB'), files are split into shards plus a transformers index.
    The directory changes in one step (see `save_pretrained_directory`): its other files stay,
    weight files of the same format left from an earlier save go. `progress(name, nbytes)` is
    called after each tensor is written.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown checkpoint format {format!r}; expected one of {', '.join(FORMATS)}")
    architecture = normalize_architecture(architecture)
    if format == "h5":
        check_keras_layout(config, architecture)
    specs = weight_specs(config, architecture)
    match = match_state_dict(specs, state, config, architecture)
    match.raise_for_errors(f"saving {architecture}")
    if match.fresh_head or match.unused_head:
        from xlm.weights import WeightMismatchError

        raise WeightMismatchError(match.fresh_head, match.unused_head, [], f"saving {architecture}")
    tensors = match.tensors
    directory = os.fspath(directory)
    if not is_atomic_tmp_dir(directory):
        return save_pretrained_directory(
            directory,
            lambda tmp: _write_state_dict(tensors, specs, tmp, architecture, format, max_shard_size, progress),
            [format],
        )
    return _write_state_dict(tensors, specs, directory, architecture, format, max_shard_size, progress)


def _keep_except(formats: list[str]) -> Callable[[str], bool]:
    """Which entries of an existing directory a save of `formats` carries over: all but those
    formats' weight files (single, index, shards) and temporary files of interrupted writes."""
    patterns = [re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp\Z"), re.compile(r"\.tmp-[A-Za-z0-9_]{8}-.+\Z")]
    for fmt in formats:
        single, index_name = FORMATS[fmt]
        stem, suffix = os.path.splitext(single)
        patterns.append(re.compile(
            "(" + re.escape(single) + "|" + re.escape(index_name) + "|" + re.escape(stem) + r"-\d{5}-of-\d{5}"
            + re.escape(suffix) + r")\Z"
        ))
    return lambda name: not any(p.match(name) for p in patterns)


def save_pretrained_directory(
    save_directory: str | os.PathLike, write: Callable[[str], list[str]], formats: list[str]
) -> list[str]:
    """Run `write(directory)` (which saves a checkpoint of `formats` and returns its files) so that
    `save_directory` changes in one step; returns the files under `save_directory`.

    `write` fills a new hidden sibling directory, which then replaces `save_directory` (see
    `xlm._io.atomic_save_directory`): a reader, a crash or a kill at any moment finds the old
    checkpoint complete, or the new one, never a mix; two processes saving at once leave one
    complete checkpoint (the last to finish). As transformers' save_pretrained, the other files of
    an existing directory (tokenizer files, a README, sub-directories) are kept, hard-linked into
    the new one; weight files of `formats` from an earlier save are dropped. A temporary directory
    left by a killed save is removed by the next save. Inside another such save (`write` calling
    savers), files are written straight into the directory being filled.
    """
    save_directory = os.fspath(save_directory)
    if os.path.isfile(save_directory):
        raise NotADirectoryError(f"cannot save a checkpoint into {save_directory}: it is a file")
    if is_atomic_tmp_dir(save_directory):
        return write(save_directory)
    with atomic_save_directory(save_directory, keep=_keep_except(list(formats))) as tmp:
        files = write(tmp)
    return [os.path.join(save_directory, os.path.relpath(f, tmp)) for f in files]


def _write_state_dict(tensors: Mapping[str, Any], specs: list[WeightSpec], directory: str, architecture: str,
                      format: str, max_shard_size: int | str | None,
                      progress: Callable[[str, int], None] | None) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    single, index_name = FORMATS[format]
    max_bytes = _parse_size(max_shard_size) if max_shard_size is not None else None

    stored = [s for s in specs if s.tied_to is None]
    tied = [s for s in specs if s.tied_to is not None]
    sizes = {s.torch_name: _nbytes(tensors[s.torch_name]) for s in stored}
    shards = _split_shards([s.torch_name for s in stored], sizes, max_bytes)
    sharded = len(shards) > 1
    files = [_shard_name(single, i, len(shards)) for i in range(len(shards))] if sharded else [single]
    weight_map: dict[str, str] = {}
    by_torch = {s.torch_name: s for s in specs}

    if format == "h5" and not sharded:
        _write_h5(os.path.join(directory, single), specs, tensors, architecture, progress)
    else:
        for file, names in zip(files, shards):
            if format == "bin":
                # tied tensors live in their source's shard, sharing its storage as torch.save does
                names = names + [s.torch_name for s in tied if s.tied_to in names]
            path = os.path.join(directory, file)
            if format == "safetensors":
                _write_safetensors(path, [(n, tensors[n]) for n in names], {"format": "pt"}, progress)
            elif format == "bin":
                _write_bin(path, names, tensors, by_torch, progress)
            else:
                model_name = keras_model_name(architecture)
                entries = [(f"{by_torch[n].h5_name}:0", by_torch[n]) for n in names]
                _write_h5_shard(path, entries, tensors, progress)
                names = [f"{model_name}/{weight}" for weight, _ in entries]
            weight_map.update({n: file for n in names})
    written = list(files)
    if sharded:
        total = sum(sizes.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        if format != "h5":
            n_params = sum(int(np.prod(tensors[n].shape, dtype=np.int64)) for n in sizes)
            index["metadata"] = {"total_parameters": n_params, "total_size": total}
        atomic_write_text(os.path.join(directory, index_name), json.dumps(index, indent=2, sort_keys=True) + "\n")
        written.append(index_name)
    _remove_stale(directory, format, written)
    return [os.path.join(directory, f) for f in written]


def _write_bin(path: str, names: list[str], tensors: Mapping[str, Any], by_torch: dict[str, WeightSpec],
               progress: Callable[[str, int], None] | None) -> None:
    torch = _torch()
    out: dict[str, Any] = {}
    for name in names:
        spec = by_torch[name]
        if spec.tied_to is not None:
            out[name] = out[spec.tied_to] if spec.tied_to in out else _to_torch(np.asarray(tensors[spec.tied_to]))
        else:
            out[name] = _to_torch(np.asarray(tensors[name]))
    with atomic_path(path) as tmp:
        torch.save(out, tmp)
    if progress is not None:
        for name in names:
            progress(name, out[name].numel() * out[name].element_size())


def _remove_stale(directory: str, format: str, written: list[str]) -> None:
    """Drop weight files of `format` left from an earlier save (as transformers does)."""
    single, index_name = FORMATS[format]
    stem, suffix = os.path.splitext(single)
    shard = re.compile(re.escape(stem) + r"-\d{5}-of-\d{5}" + re.escape(suffix) + "$")
    for name in os.listdir(directory):
        if name in written:
            continue
        if name in (single, index_name) or shard.match(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
