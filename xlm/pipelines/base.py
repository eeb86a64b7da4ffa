"""Batched inference over many sentences: `xlm.pipeline("feature-extraction" | "fill-mask", ...)`.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TASKS = ("feature-extraction", "fill-mask")
POOLINGS = (None, "mean", "first")
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
#       only (saves most of its time, and batch × length × vocab logits of memory).
ROUTES = ("encoder", "hidden_states", "logits", "encoder+head")


def _route(model: Any, task: str) -> str:
    if task == "fill-mask":
        if not _has_lm_head(model):
            raise TypeError(
                f"fill-mask needs a model with an LM head (XLMWithLMHeadModel or TFXLMWithLMHeadModel), "
                f"got {type(model).__name__}"
            )
        return "encoder+head" if _is_our_head_model(model) and hasattr(model, "pred_layer") else "logits"
    if _is_base_model(model) or _is_our_head_model(model):
        return "encoder"
    return "hidden_states"


class _TorchRunner:
    """Runs a PyTorch model (put in eval mode) on numpy batches under inference_mode."""

    def __init__(self, model: Any, route: str) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()
        self.route = route
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


class _KerasRunner:
    """Runs a Keras model on numpy batches with training=False, on any Keras backend.

    On TensorFlow, inputs are traced with unknown batch and length dimensions, so batches of any shape
    reuse one graph instead of retracing (`mode="eager"` skips tf.function). On JAX and torch the model
    runs op by op (under `torch.no_grad()` on torch).
    """

    def __init__(self, model: Any, route: str, mode: str = "function") -> None:
        import keras

        if mode not in KERAS_MODES:
            raise ValueError(f"keras_mode must be one of {KERAS_MODES}, got {mode!r}")
        self.backend = keras.backend.backend()
        self.ops = keras.ops
        self.model = model
        self.route = route
        self.mode = mode if self.backend == "tensorflow" else "eager"
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

    def __call__(self, inputs: dict[str, np.ndarray], gather: np.ndarray | None = None) -> np.ndarray:
        """Hidden states (batch, length, dim), or scores (n, vocab) at the (row, position) pairs of `gather`."""
        ops = self.ops
        tensors = {k: ops.convert_to_tensor(v.astype(np.int32)) for k, v in inputs.items()}
        args = (tensors,) if gather is None else (tensors, ops.convert_to_tensor(gather.astype(np.int32)))
        if self.mode == "eager":
            if self.backend == "torch":
                import torch

                no_grad = torch.no_grad()
            else:
                no_grad = contextlib.nullcontext()
            with no_grad:
                return np.asarray(ops.convert_to_numpy(self._forward(*args)), dtype=np.float32)
        from xlm.tf_backend.tensorflow_only import batch_function

        key = (tuple(sorted(tensors)), gather is not None)
        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = batch_function(self._forward, list(tensors), gather is not None)
        return np.asarray(fn(*args).numpy(), dtype=np.float32)


# --- pipelines ----------------------------------------------------------------------------------


class Pipeline:
    """Length-grouped batched inference; subclasses say what comes out of each sentence.

    Args:
        model: an XLM model of either stack (set to eval mode for PyTorch).
        tokenizer: an XLMTokenizer (any tokenizer with the same `__call__` works).
        batch_size: most sentences in one batch.
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
        self.route = _route(model, self.task)  # one of ROUTES
        self._runner = (
            _TorchRunner(model, self.route)
            if self.framework == "torch"
            else _KerasRunner(model, self.route, keras_mode)
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
    def _tokenize(self, texts: list[str], langs: list[str | None]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Token ids (and token type ids, when the tokenizer gives them) of every text, in order."""
        groups: dict[str | None, list[int]] = {}
        for i, lang in enumerate(langs):
            groups.setdefault(lang, []).append(i)
        ids: list[list[int]] = [[] for _ in texts]
        types: list[list[int]] | None = [[] for _ in texts]
        kwargs: dict[str, Any] = {"add_special_tokens": True, "return_attention_mask": False}
        if self.truncation:
            kwargs.update(truncation=True, max_length=self.config.max_position_embeddings)
        for lang, members in groups.items():
            extra = {} if lang is None else {"lang": lang}
            encoded = self.tokenizer([texts[i] for i in members], **kwargs, **extra)
            group_types = encoded.get("token_type_ids") if hasattr(encoded, "get") else None
            if group_types is None:
                types = None
            for j, i in enumerate(members):
                ids[i] = list(encoded["input_ids"][j])
                if types is not None:
                    types[i] = list(group_types[j])
        limit = self.config.max_position_embeddings
        for i, seq in enumerate(ids):
            if len(seq) > limit:
                raise ValueError(
                    f"input {i} has {len(seq)} tokens, more than max_position_embeddings = {limit}; "
                    f"pass truncation=True to cut it"
                )
        return ids, types

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

    def _run(self, inputs: str | Sequence[str], lang: str | Sequence[str | None] | None, **options: Any) -> Any:
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input {i} must be a string, got {type(text).__name__}")
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
        results: list[Any] = [None] * len(texts)
        for rows in plan_batches(
            [len(x) for x in ids], self.batch_size, self.max_tokens, self.max_padding, self.batch_overhead
        ):
            batch = self._pack(rows, ids, types, lang_ids)
            stats.batches += 1
            stats.padded_tokens += batch["input_ids"].size
            stats.real_tokens += sum(len(ids[i]) for i in rows)
            tick = time.perf_counter()
            self._process(batch, rows, ids, results, **options)
            stats.model_seconds += time.perf_counter() - tick
        stats.total_seconds = time.perf_counter() - start
        self.stats = stats
        return results[0] if single else results

    def _check_inputs(self, ids: list[list[int]]) -> None:
        """Task-specific checks on the token ids before any batch runs."""

    def _process(
        self, batch: dict[str, np.ndarray], rows: np.ndarray, ids: list[list[int]], results: list, **options: Any
    ) -> None:
        """Run one packed batch and store each of its sentences' results at its input index."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task!r}, framework={self.framework!r}, "
            f"model={type(self.model).__name__}, route={self.route!r}, batch_size={self.batch_size}, "
            f"max_tokens={self.max_tokens}, max_padding={self.max_padding})"
        )


class FeatureExtractionPipeline(Pipeline):
    """Hidden states of every sentence's real tokens (specials included), or one pooled vector.

    Calling it returns, per input, a float32 array of shape (tokens, hidden size), or (hidden size,)
    with `pooling="mean"` (average over the real tokens) or `pooling="first"` (the `<s>` token).
    Head models give their encoder's last hidden states.
    """

    task = "feature-extraction"

    def __init__(self, model: Any, tokenizer: Any, pooling: str | None = None, **kwargs: Any) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        super().__init__(model, tokenizer, **kwargs)

    def __call__(
        self, inputs: str | Sequence[str], lang: str | Sequence[str] | None = None, pooling: str | None = None
    ) -> np.ndarray | list[np.ndarray]:
        """Features of one text (an array) or of a list of texts (a list of arrays, input order)."""
        pooling = self.pooling if pooling is None else pooling
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        return self._run(inputs, lang, pooling=pooling)

    def _process(self, batch, rows, ids, results, pooling=None) -> None:
        hidden = self._runner(batch)
        for r, i in enumerate(rows):
            states = hidden[r, : len(ids[i])]
            if pooling == "mean":
                results[i] = states.mean(axis=0)
            elif pooling == "first":
                results[i] = states[0].copy()
            else:
                results[i] = np.ascontiguousarray(states)


class FillMaskPipeline(Pipeline):
    """Top-k tokens and their probabilities for each mask token of each sentence.

    Results follow transformers' fill-mask pipeline: per input, a list of `top_k` dicts
    {"score", "token", "token_str", "sequence"} when it holds one mask, a list of such lists (one
    per mask, left to right) when it holds several. Needs an LM-head model.
    """

    task = "fill-mask"

    def __init__(self, model: Any, tokenizer: Any, top_k: int = 5, **kwargs: Any) -> None:
        self.top_k = top_k
        super().__init__(model, tokenizer, **kwargs)
        mask = getattr(tokenizer, "mask_token_id", None)
        self.mask_id = int(mask if mask is not None else self.config.mask_index)
        self.mask_token = getattr(tokenizer, "mask_token", None) or f"id {self.mask_id}"

    def __call__(
        self, inputs: str | Sequence[str], lang: str | Sequence[str] | None = None, top_k: int | None = None
    ) -> list:
        """Predictions for one text or for a list of texts (input order)."""
        top_k = self.top_k if top_k is None else top_k
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        return self._run(inputs, lang, top_k=top_k)

    def fill_mask(self, text: str | Sequence[str], lang: str | Sequence[str] | None = None, top_k: int = 5) -> list:
        """The `top_k` most likely tokens at each mask of `text` (see the class docstring)."""
        return self(text, lang=lang, top_k=top_k)

    def _check_inputs(self, ids: list[list[int]]) -> None:
        for i, seq in enumerate(ids):
            if self.mask_id not in seq:
                raise ValueError(f"input {i} holds no mask token ({self.mask_token}); fill-mask needs at least one")

    def _process(self, batch, rows, ids, results, top_k=5) -> None:
        positions = np.argwhere(batch["input_ids"] == self.mask_id)  # (n, 2): row, position; row-major
        logits = self._runner(batch, gather=positions)
        top_k = min(top_k, logits.shape[-1])
        logits = logits - logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=-1, keepdims=True)
        top = np.argpartition(-probs, top_k - 1, axis=-1)[:, :top_k]
        top_probs = np.take_along_axis(probs, top, axis=-1)
        order = np.argsort(-top_probs, axis=-1, kind="stable")
        top, top_probs = np.take_along_axis(top, order, -1), np.take_along_axis(top_probs, order, -1)
        per_row: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for (row, pos), token_ids, scores in zip(positions, top, top_probs):
            per_row.setdefault(int(row), []).append((int(pos), token_ids, scores))
        decode = self.tokenizer.decode
        for r, i in enumerate(rows):
            masks = per_row[r]
            single = len(masks) == 1
            seq = np.asarray(ids[i])
            answers = []
            for pos, token_ids, scores in masks:
                row = []
                for token, score in zip(token_ids.tolist(), scores.tolist()):
                    filled = seq.copy()
                    filled[pos] = token
                    row.append(
                        {
                            "score": score,
                            "token": token,
                            "token_str": decode([token]),
                            "sequence": decode(filled.tolist(), skip_special_tokens=single),
                        }
                    )
                answers.append(row)
            results[i] = answers[0] if single else answers


_PIPELINES: dict[str, type[Pipeline]] = {
    "feature-extraction": FeatureExtractionPipeline,
    "fill-mask": FillMaskPipeline,
}
_MODEL_CLASSES = {
    ("feature-extraction", "torch"): "XLMModel",
    ("feature-extraction", "keras"): "TFXLMModel",
    ("fill-mask", "torch"): "XLMWithLMHeadModel",
    ("fill-mask", "keras"): "TFXLMWithLMHeadModel",
}


def _default_framework() -> str:
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return "torch"
    if importlib.util.find_spec("keras") is not None:
        return "keras"
    raise ImportError("neither PyTorch nor Keras is installed: `pip install 'xlm[torch]'`, `'xlm[tf]'` or `'xlm[jax]'`")


def pipeline(
    task: str,
    model: Any,
    tokenizer: Any = None,
    batch_size: int = 256,
    framework: str | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build a batched inference pipeline for `task` ("feature-extraction" or "fill-mask").

    Args:
        task: "feature-extraction" (hidden states per sentence, or pooled) or "fill-mask".
        model: a model of either stack, or a directory / hub id to load one from.
        tokenizer: an XLMTokenizer or a directory to load one from (default: `model`'s directory).
        batch_size: most sentences per batch.
        framework: "torch" or "keras" when `model` is a path (default: torch if installed).
        **kwargs: the Pipeline options (max_tokens, max_padding, batch_overhead, lang, truncation,
            keras_mode) and the task's own (pooling for feature-extraction, top_k for fill-mask).

    The returned pipeline is called on one text or a list of texts; `pipeline.stats` then holds
    what the call did (batches, real and padded tokens, `padding_waste`, seconds per stage).

    Example:
        >>> extractor = xlm.pipeline("feature-extraction", model=model, tokenizer=tokenizer)
        >>> features = extractor(["Hello world.", "A longer sentence goes here."])
        >>> [f.shape for f in features]  # (tokens, hidden size) each, in input order
    """
    if task not in _PIPELINES:
        raise ValueError(f"unknown task {task!r}; supported tasks: {', '.join(TASKS)}")
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        import os

        import xlm

        path = os.fspath(model)
        framework = framework or _default_framework()
        if framework not in ("torch", "keras"):
            raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
        model = getattr(xlm, _MODEL_CLASSES[task, framework]).from_pretrained(path)
        if tokenizer is None:
            tokenizer = path
    if tokenizer is None:
        raise ValueError("a tokenizer is needed: pass tokenizer=XLMTokenizer.from_pretrained(...) or a directory")
    if isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__"):
        from xlm.tokenizer import XLMTokenizer

        tokenizer = XLMTokenizer.from_pretrained(tokenizer)
    return _PIPELINES[task](model, tokenizer, batch_size=batch_size, **kwargs)

