"""What every pipeline shares: the batch plan, the two frameworks' runners and the Pipeline base.

The usual recipe (tokenizer(padding=True) on batches of 32 in input order, then the model) spends
most of its compute on padding when sentence lengths vary, as they do in real text. A pipeline
tokenises every input first, sorts the sentences by length and cuts them into batches of
neighbours (`plan_batches`: few, large batches, at most `max_tokens` padded tokens each, with at
most `max_padding` — 10 % by default — of all positions padded), runs the model once per batch,
strips the padding and hands results back in input order. The model sees exactly what
`model(**tokenizer([text]))` would show it for one sentence (plus `langs` when a language is
given), so the results equal the one-sentence-at-a-time ones up to float rounding.

Works with our PyTorch models (`xlm.torch_backend`) and our Keras models (`xlm.tf_backend`); the
framework is recognised from the model's class without importing the one that is not installed.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

KERAS_MODES = ("function", "eager")


@dataclass
class PipelineStats:
    """What the last call did: sentences, batches, real and padded tokens, and seconds spent
    tokenising, in the batches (forward pass and unpacking of results) and in all."""

    sentences: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    tokenize_seconds: float = 0.0
    model_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def padding_waste(self) -> float:
        """Share of the model's input positions that were padding (0 when nothing ran)."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    @property
    def tokens_per_second(self) -> float:
        """Real tokens per second end to end (tokenise + forward + unpacking)."""
        return self.real_tokens / self.total_seconds if self.total_seconds else 0.0


def plan_batches(
    lengths: Sequence[int],
    batch_size: int = 256,
    max_tokens: int = 4096,
    max_padding: float = 0.1,
    batch_overhead: int = 256,
) -> list[np.ndarray]:
    """Group sentence indices into batches of similar length (index arrays, shortest first).

    Of all ways to cut the length-sorted sentences into runs of at most `batch_size` sentences and
    `max_tokens` padded tokens (sentences × longest; a longer sentence gets a batch of its own),
    take the cheapest, counting each batch as its padded tokens plus `batch_overhead`: a forward
    pass over few tokens runs far below the matmul rate, so every batch has a fixed cost. Where that
    plan pads more than `max_padding` of all positions, the overhead is lowered until it does not
    (at overhead 0 the plan pads as little as the limits allow, which is nothing).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not 0.0 <= max_padding < 1.0:
        raise ValueError(f"max_padding must be in [0, 1), got {max_padding}")
    if batch_overhead < 0:
        raise ValueError(f"batch_overhead must be non-negative, got {batch_overhead}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    real = int(sorted_lengths.sum())

    def padding_share(starts: list[int]) -> float:
        ends = starts[1:] + [len(order)]
        padded = sum((e - s) * int(sorted_lengths[e - 1]) for s, e in zip(starts, ends))
        return 1.0 - real / padded if padded else 0.0

    starts = _cheapest_cut(sorted_lengths, batch_size, max_tokens, batch_overhead)
    if padding_share(starts) > max_padding:
        low, high, starts = 0.0, float(batch_overhead), _cheapest_cut(sorted_lengths, batch_size, max_tokens, 0.0)
        for _ in range(8):  # bisect for the largest overhead whose plan keeps to max_padding
            middle = (low + high) / 2
            candidate = _cheapest_cut(sorted_lengths, batch_size, max_tokens, middle)
            if padding_share(candidate) <= max_padding:
                low, starts = middle, candidate
            else:
                high = middle
    ends = starts[1:] + [len(order)]
    return [order[s:e] for s, e in zip(starts, ends)]


def _cheapest_cut(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int, overhead: float) -> list[int]:
    """First positions of the batches of the cheapest cut (dynamic programming over prefixes)."""
    n = len(sorted_lengths)
    cost = np.zeros(n + 1)  # cost[j]: cheapest batching of the j shortest sentences
    first = np.zeros(n + 1, dtype=np.int64)  # where the last batch of that batching starts
    for j in range(1, n + 1):
        longest = int(sorted_lengths[j - 1])
        rows = max(1, min(batch_size, max_tokens // longest))
        lo = max(0, j - rows)
        candidates = cost[lo:j] + overhead + (j - np.arange(lo, j)) * longest
        k = int(np.argmin(candidates))
        cost[j], first[j] = candidates[k], lo + k
    starts, j = [], n
    while j > 0:
        j = int(first[j])
        starts.append(j)
    return starts[::-1]


# --- framework adapters -------------------------------------------------------------------------


def _class_names(model: Any) -> list[tuple[str, str]]:
    return [(cls.__module__.split(".")[0], cls.__name__) for cls in type(model).__mro__]


def detect_framework(model: Any) -> str:
    """'torch' for a torch.nn.Module, 'keras' for a Keras model; judged by class, importing nothing."""
    for root, name in _class_names(model):
        if root == "torch" and name == "Module":
            return "torch"
        if root in ("keras", "tf_keras", "tensorflow") and name in ("Model", "Layer"):
            return "keras"
    raise TypeError(
        f"model must be a PyTorch module (xlm.torch_backend) or a Keras model (xlm.tf_backend), "
        f"got {type(model).__module__}.{type(model).__name__}"
    )


def _is_base_model(model: Any) -> bool:
    return any(name in ("XLMModel", "TFXLMModel") for _, name in _class_names(model))


def _has_lm_head(model: Any) -> bool:
    return any("WithLMHead" in name for _, name in _class_names(model))


def _is_our_head_model(model: Any) -> bool:
    """Our head models expose the encoder as `transformer` (and the LM head its output layer as
    `pred_layer`), so a pipeline can skip work the task does not need."""
    return type(model).__module__.startswith("xlm.") and hasattr(model, "transformer")


# How a runner gets the task's output out of a model:
#   "encoder": the last hidden state of the model itself (a base model) or of its `transformer`;
#   "hidden_states": the last of all hidden states of a foreign head model;
#   "logits": the LM head's scores at the gathered positions;
#   "encoder+head": our LM head split in two, the output layer applied to the gathered positions
#       only (saves most of its time, and batch × length × vocab logits of memory);
#   "outputs": the model's own forward, named output fields read back (the task heads).
ROUTES = ("encoder", "hidden_states", "logits", "encoder+head", "outputs")


def _route(model: Any, task: str) -> str:
    if task == "fill-mask":
        if not _has_lm_head(model):
            raise TypeError(
                f"fill-mask needs a model with an LM head (XLMWithLMHeadModel or TFXLMWithLMHeadModel), "
                f"got {type(model).__name__}"
            )
        return "encoder+head" if _is_our_head_model(model) and hasattr(model, "pred_layer") else "logits"
    if task != "feature-extraction":
        return "outputs"
    if _is_base_model(model) or _is_our_head_model(model):
        return "encoder"
    return "hidden_states"


def require_head(model: Any, task: str, *heads: str) -> None:
    """A TypeError unless the model's class (either stack, or transformers') is one of `heads`."""
    names = {name for _, name in _class_names(model)}
    if not any(head in names or "TF" + head in names for head in heads):
        raise TypeError(f"{task} needs a model of class {' or '.join(heads)} (or its TF twin), got {type(model).__name__}")


# --- devices ------------------------------------------------------------------------------------


def parse_device(device: Any) -> tuple[str, int]:
    """("cpu", 0) or ("cuda", index) from transformers' device values: -1, "cpu", 0, "cuda:1", "gpu", a torch.device."""
    if device is None:
        return "cpu", 0
    if isinstance(device, bool) or not isinstance(device, (int, str)) and type(device).__name__ != "device":
        raise TypeError(f"device must be -1, a GPU index, 'cpu', 'cuda[:n]' or a torch.device, got {device!r}")
    if isinstance(device, int):
        if device < -1:
            raise ValueError(f"device must be -1 (CPU) or a GPU index >= 0, got {device}")
        return ("cpu", 0) if device == -1 else ("cuda", device)
    text = str(device).lower()
    match = re.fullmatch(r"(cpu|cuda|gpu)(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"device must be -1, a GPU index, 'cpu', 'cuda[:n]' or a torch.device, got {device!r}")
    kind, index = match.group(1), int(match.group(2) or 0)
    return ("cpu", 0) if kind == "cpu" else ("cuda", index)


def _gpu_count(framework: str) -> int:
    if framework == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return sum(d.platform == "gpu" for d in jax.devices())
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(device: Any, framework: str) -> tuple[str, int]:
    """The parsed device, or a clear error when it names a GPU this machine (or framework) lacks."""
    kind, index = parse_device(device)
    if kind == "cuda":
        count = _gpu_count(framework)
        if index >= count:
            found = "no GPU is visible" if count == 0 else f"only {count} GPU(s) are visible"
            raise ValueError(f"device={device!r} asks for GPU {index}, but {found} to {framework} (CUDA absent?); use device='cpu' or -1")
    return kind, index


# --- framework runners --------------------------------------------------------------------------


def _squeeze_cls_index(inputs: dict[str, Any], reshape: Any) -> dict[str, Any]:
    """cls_index travels as (batch, 1) so every input has the runners' (batch, length) rank."""
    if "cls_index" in inputs:
        inputs = dict(inputs, cls_index=reshape(inputs["cls_index"], (-1,)))
    return inputs


class _TorchRunner:
    """Runs a PyTorch model (put in eval mode) on numpy batches under inference_mode."""

    def __init__(self, model: Any, route: str, device: tuple[str, int] = ("cpu", 0)) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()
        self.route = route
        if device[0] == "cuda":
            self.device = torch.device("cuda", device[1])
            model.to(self.device)
        else:
            param = next(model.parameters(), None)
            self.device = param.device if param is not None else torch.device("cpu")

    def __call__(self, inputs: dict[str, np.ndarray], gather: np.ndarray | None = None) -> np.ndarray:
        """Hidden states (batch, length, dim), or scores (n, vocab) at the (row, position) pairs of `gather`."""
        torch, model, route = self.torch, self.model, self.route
        with torch.inference_mode():
            x = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
            if route in ("encoder", "encoder+head"):
                encoder = model if _is_base_model(model) else model.transformer
                result = encoder(**x, return_dict=True)["last_hidden_state"]
            elif route == "hidden_states":
                result = model(**x, return_dict=True, output_hidden_states=True)["hidden_states"][-1]
            else:
                result = model(**x, return_dict=True)["logits"]
            if gather is not None:
                index = torch.from_numpy(gather).to(self.device)
                result = result[index[:, 0], index[:, 1]]
                if route == "encoder+head":
                    result = model.pred_layer(result)[0]
            return result.float().cpu().numpy()

    def outputs(self, inputs: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's output fields `keys` on one batch (floats as float32)."""
        torch = self.torch
        with torch.inference_mode():
            x = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
            out = self.model(**_squeeze_cls_index(x, torch.reshape), return_dict=True)
            result = {}
            for key in keys:
                value = out[key]
                result[key] = (value.float() if value.is_floating_point() else value).cpu().numpy()
            return result


class _KerasRunner:
    """Runs a Keras model on numpy batches with training=False, on any Keras backend.

    On TensorFlow, inputs are traced with unknown batch and length dimensions, so batches of any shape
    reuse one graph instead of retracing (`mode="eager"` skips tf.function). On JAX and torch the model
    runs op by op (under `torch.no_grad()` on torch).
    """

    def __init__(self, model: Any, route: str, mode: str = "function", device: tuple[str, int] = ("cpu", 0)) -> None:
        import keras

        if mode not in KERAS_MODES:
            raise ValueError(f"keras_mode must be one of {KERAS_MODES}, got {mode!r}")
        self.keras = keras
        self.backend = keras.backend.backend()
        self.ops = keras.ops
        self.model = model
        self.route = route
        self.mode = mode if self.backend == "tensorflow" else "eager"
        self.device_name = "gpu:%d" % device[1] if device[0] == "cuda" else None
        self._functions: dict[tuple, Any] = {}

    def _forward(self, inputs: dict[str, Any], gather: Any = None) -> Any:
        model, route, ops = self.model, self.route, self.ops
        if route in ("encoder", "encoder+head"):
            encoder = model if _is_base_model(model) else model.transformer
            result = encoder(**inputs, training=False, return_dict=True)["last_hidden_state"]
        elif route == "hidden_states":
            result = model(**inputs, training=False, return_dict=True, output_hidden_states=True)["hidden_states"][-1]
        else:
            result = model(**inputs, training=False, return_dict=True)["logits"]
        if gather is not None:  # the (row, position) pairs, as one index into the flattened positions
            length = ops.shape(result)[1]
            flat = ops.reshape(result, (-1, ops.shape(result)[-1]))
            result = ops.take(flat, gather[:, 0] * length + gather[:, 1], axis=0)
            if route == "encoder+head":
                result = model.pred_layer(result)[0]
        return result

    def _scope(self) -> Any:
        """No-grad on torch, and the GPU asked for (if any)."""
        stack = contextlib.ExitStack()
        if self.device_name is not None:
            stack.enter_context(self.keras.device(self.device_name))
        if self.backend == "torch":
            import torch

            stack.enter_context(torch.no_grad())
        return stack

    def _call(self, forward: Any, key: tuple, tensors: dict[str, Any], *extra: Any) -> Any:
        if self.mode == "eager":
            return forward(tensors, *extra)
        from xlm.tf_backend.tensorflow_only import batch_function

        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = batch_function(forward, list(tensors), bool(extra))
        return fn(tensors, *extra)

    def __call__(self, inputs: dict[str, np.ndarray], gather: np.ndarray | None = None) -> np.ndarray:
        """Hidden states (batch, length, dim), or scores (n, vocab) at the (row, position) pairs of `gather`."""
        ops = self.ops
        with self._scope():
            tensors = {k: ops.convert_to_tensor(v.astype(np.int32)) for k, v in inputs.items()}
            extra = () if gather is None else (ops.convert_to_tensor(gather.astype(np.int32)),)
            result = self._call(self._forward, (tuple(sorted(tensors)), gather is not None), tensors, *extra)
            return np.asarray(ops.convert_to_numpy(result), dtype=np.float32)

    def outputs(self, inputs: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's output fields `keys` on one batch (floats as float32)."""
        ops, keys = self.ops, tuple(keys)

        def forward(tensors: dict[str, Any]) -> dict[str, Any]:
            out = self.model(**_squeeze_cls_index(tensors, ops.reshape), training=False, return_dict=True)
            return {key: out[key] for key in keys}

        with self._scope():
            tensors = {k: ops.convert_to_tensor(v.astype(np.int32)) for k, v in inputs.items()}
            result = self._call(forward, ("outputs", tuple(sorted(tensors)), keys), tensors)
            arrays = {k: np.asarray(ops.convert_to_numpy(v)) for k, v in result.items()}
        return {k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v for k, v in arrays.items()}


# --- pipelines ----------------------------------------------------------------------------------


@dataclass
class Features:
    """The model's input rows of one call: token ids (and token types) per row, the input each row
    came from (`owner`), and the row's language id (None: no `langs` input)."""

    ids: list[list[int]]
    types: list[list[int]] | None
    lang_ids: list[int | None]
    owner: list[int]


class Pipeline:
    """Length-grouped batched inference; subclasses say what goes in and what comes out.

    Args:
        model: an XLM model of either stack (set to eval mode for PyTorch).
        tokenizer: an XLMTokenizer (any tokenizer with the same `__call__` works).
        batch_size: most sentences in one batch (may also be given per call).
        max_tokens: most padded tokens (sentences × longest) in one batch. On CPU this cap, not
            `batch_size`, should bind: a matmul over fewer than ~1,000 token rows runs well below
            the machine's rate, so short sentences are worth batching by the hundred.
        max_padding: most padding share allowed over all batches of a call.
        batch_overhead: fixed cost of one batch in padded-token equivalents, which the batch plan
            weighs against padding (see `plan_batches`).
        lang: default language code for every call (tokeniser rules and `langs` ids).
        truncation: cut sentences longer than the model's `max_position_embeddings` instead of
            raising.
        keras_mode: "function" (tf.function over unknown shapes, the default) or "eager".
        device: where the model runs, as transformers takes it: -1 or "cpu", a GPU index, "cuda:1",
            a torch.device; a GPU that is not there is a ValueError.
    """

    task: str = ""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 256,
        max_tokens: int = 4096,
        max_padding: float = 0.1,
        batch_overhead: int = 256,
        lang: str | None = None,
        truncation: bool = False,
        keras_mode: str = "function",
        device: Any = None,
    ) -> None:
        self.framework = detect_framework(model)
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.max_padding = max_padding
        self.batch_overhead = batch_overhead
        self.lang = lang
        self.truncation = truncation
        plan_batches([], batch_size, max_tokens, max_padding, batch_overhead)  # validates the limits
        self.device = check_device(device, self.framework)
        self.route = _route(model, self.task)  # one of ROUTES
        self._runner = (
            _TorchRunner(model, self.route, self.device)
            if self.framework == "torch"
            else _KerasRunner(model, self.route, keras_mode, self.device)
        )
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else self.config.pad_index)
        self.stats = PipelineStats()

    # --- languages ------------------------------------------------------------------------------
    def _lang2id(self) -> dict[str, int] | None:
        mapping = getattr(self.tokenizer, "lang2id", None) or getattr(self.config, "lang2id", None)
        return dict(mapping) if mapping else None

    def _lang_ids(self, langs: list[str | None]) -> list[int | None]:
        """Language id per sentence, or None where no `langs` input is wanted."""
        uses_lang_emb = self.config.n_langs > 1 and bool(getattr(self.config, "use_lang_emb", True))
        mapping = self._lang2id()
        ids: list[int | None] = []
        for lang in langs:
            if lang is None:
                ids.append(None)
            elif mapping is not None:
                if lang not in mapping:
                    raise ValueError(f"unknown language {lang!r}; this model knows {', '.join(sorted(mapping))}")
                ids.append(mapping[lang] if uses_lang_emb else None)
            elif uses_lang_emb:
                raise ValueError(
                    f"lang={lang!r} was given but neither the tokenizer nor the config has a lang2id map "
                    f"for the model's {self.config.n_langs} languages"
                )
            else:
                ids.append(None)
        return ids

    # --- tokenisation ---------------------------------------------------------------------------
    def _encode(
        self,
        examples: list[Any],
        langs: list[str | None],
        add_special_tokens: bool = True,
        offsets: bool = False,
        truncate: bool | str | None = None,
        special_mask: bool = False,
    ) -> dict[str, list]:
        """The tokenizer's input_ids (and token_type_ids, offset_mapping) of every example (a text or a
        (text, text_pair) tuple), in order; one tokenizer call per language."""
        groups: dict[str | None, list[int]] = {}
        for i, lang in enumerate(langs):
            groups.setdefault(lang, []).append(i)
        columns: dict[str, list] = {}
        kwargs: dict[str, Any] = {"add_special_tokens": add_special_tokens, "return_attention_mask": False}
        if offsets:
            kwargs["return_offsets_mapping"] = True
        if special_mask:
            kwargs["return_special_tokens_mask"] = True
        strategy = self.truncation if truncate is None else truncate
        if strategy:
            kwargs.update(truncation=strategy if isinstance(strategy, str) else True,
                          max_length=self.config.max_position_embeddings)
        for lang, members in groups.items():
            extra = {} if lang is None else {"lang": lang}
            encoded = self.tokenizer([examples[i] for i in members], **kwargs, **extra)
            for key in ("input_ids", "token_type_ids", "offset_mapping", "special_tokens_mask"):
                value = encoded.get(key) if hasattr(encoded, "get") else None
                if value is None:
                    continue
                column = columns.setdefault(key, [None] * len(examples))
                for j, i in enumerate(members):
                    column[i] = [tuple(x) for x in value[j]] if key == "offset_mapping" else list(value[j])
        if any(x is None for column in columns.values() for x in column):  # a key only some groups gave
            columns.pop("token_type_ids", None)
        return columns

    def _check_length(self, ids: list[list[int]]) -> None:
        limit = self.config.max_position_embeddings
        for i, seq in enumerate(ids):
            if len(seq) > limit:
                raise ValueError(
                    f"input {i} has {len(seq)} tokens, more than max_position_embeddings = {limit}; "
                    f"pass truncation=True to cut it"
                )

    def _tokenize(self, texts: list[Any], langs: list[str | None]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Token ids (and token type ids, when the tokenizer gives them) of every text, in order."""
        columns = self._encode(texts, langs)
        ids = columns.get("input_ids", [[] for _ in texts])
        self._check_length(ids)
        return ids, columns.get("token_type_ids")

    # --- batching -------------------------------------------------------------------------------
    def _pack(
        self,
        rows: np.ndarray,
        ids: list[list[int]],
        types: list[list[int]] | None,
        lang_ids: list[int | None],
    ) -> dict[str, np.ndarray]:
        width = max(len(ids[i]) for i in rows)
        batch = {
            "input_ids": np.full((len(rows), width), self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
        }
        if types is not None:
            batch["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        wants_langs = any(lang_ids[i] is not None for i in rows)
        if wants_langs:
            batch["langs"] = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            n = len(ids[i])
            batch["input_ids"][r, :n] = ids[i]
            batch["attention_mask"][r, :n] = 1
            if types is not None:
                batch["token_type_ids"][r, :n] = types[i]
            if wants_langs:
                batch["langs"][r] = lang_ids[i]
        return batch

    def _normalise_langs(self, n: int, lang: str | Sequence[str | None] | None) -> list[str | None]:
        lang = self.lang if lang is None else lang
        if lang is None or isinstance(lang, str):
            return [lang] * n
        langs = list(lang)
        if len(langs) != n:
            raise ValueError(f"lang has {len(langs)} entries for {n} inputs; give one per input or a single code")
        if any(x is None for x in langs) and any(x is not None for x in langs):
            raise ValueError("lang must name a language for every input or for none")
        return langs

    @staticmethod
    def _texts(inputs: Any) -> tuple[list[str], bool]:
        """The input texts as a list, and whether one string was given."""
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input {i} must be a string, got {type(text).__name__}")
        return texts, single

    def _execute(
        self,
        features: Features,
        stats: PipelineStats,
        start: float,
        batch_size: int | None = None,
        max_padding: float | None = None,
        **options: Any,
    ) -> list[Any]:
        """Run every feature row through `_process`, batch by length-grouped batch; per-row results."""
        batch_size = self.batch_size if batch_size is None else batch_size
        max_padding = self.max_padding if max_padding is None else max_padding
        ids = features.ids
        results: list[Any] = [None] * len(ids)
        if ids:
            for rows in plan_batches([len(x) for x in ids], batch_size, self.max_tokens, max_padding, self.batch_overhead):
                batch = self._pack(rows, ids, features.types, features.lang_ids)
                stats.batches += 1
                stats.padded_tokens += batch["input_ids"].size
                stats.real_tokens += sum(len(ids[i]) for i in rows)
                tick = time.perf_counter()
                self._process(batch, rows, ids, results, **options)
                stats.model_seconds += time.perf_counter() - tick
        stats.total_seconds = time.perf_counter() - start
        self.stats = stats
        return results

    def _run(
        self,
        inputs: str | Sequence[str],
        lang: str | Sequence[str | None] | None,
        batch_size: int | None = None,
        **options: Any,
    ) -> Any:
        """One result per text, the texts' own tokenisation as the model's rows."""
        texts, single = self._texts(inputs)
        stats = PipelineStats(sentences=len(texts))
        start = time.perf_counter()
        langs = self._normalise_langs(len(texts), lang)
        lang_ids = self._lang_ids(langs)
        if not texts:
            self.stats = stats
            return []
        ids, types = self._tokenize(texts, langs)
        stats.tokenize_seconds = time.perf_counter() - start
        self._check_inputs(ids)
        features = Features(ids, types, lang_ids, list(range(len(texts))))
        results = self._execute(features, stats, start, batch_size, **options)
        return results[0] if single else results

    def _check_inputs(self, ids: list[list[int]]) -> None:
        """Task-specific checks on the token ids before any batch runs."""

    def _process(
        self, batch: dict[str, np.ndarray], rows: np.ndarray, ids: list[list[int]], results: list, **options: Any
    ) -> None:
        """Run one packed batch and store each of its rows' results at the row's index."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task!r}, framework={self.framework!r}, "
            f"model={type(self.model).__name__}, route={self.route!r}, batch_size={self.batch_size}, "
            f"max_tokens={self.max_tokens}, max_padding={self.max_padding})"
        )


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax in float32 as transformers' pipelines compute it (max-shifted exp over the sum)."""
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
