"""The weight table: every XLM weight under each of its names.

One row (`WeightSpec`) per tensor of a model, giving
  - `torch_name`: the PyTorch / Hugging Face state_dict name (the de-facto checkpoint format),
  - `keras_name`: our Keras weight, as the '/'-joined layer names down to the variable
    ("transformer/attentions_0/q_lin/kernel"),
  - `h5_name`: the name in a `tf_model.h5` (transformers' TF layout, without the leading model name
    and the ':0' suffix: "transformer/attentions_._0/q_lin/kernel"); for weights transformers' TF port
    never had (asm, the SQuAD head) it follows the same rule, so our own `tf_model.h5` files hold every
    weight. The two differ only in transformers' list separator `_._`, which a Keras layer name can't
    hold (see `keras_layer_path`),
  - `original_name`: the name in a facebookresearch/XLM `.pth` checkpoint (None for heads it lacks),
  - `shape`: the PyTorch shape, and `transpose`: whether the Keras kernel is its transpose.

Model loading in both stacks, checkpoint IO and the conversion tools read this table; no other
module spells a weight name.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xlm.config import XLMConfig

BASE_MODEL_PREFIX = "transformer"

#: Head architectures (transformers' PyTorch class names); the Keras twin is "TF" + name.
ARCHITECTURES = (
    "XLMModel",
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForMultipleChoice",
    "XLMForTokenClassification",
    "XLMForQuestionAnsweringSimple",
    "XLMForQuestionAnswering",
)


@dataclass(frozen=True)
class WeightSpec:
    """One tensor of a model under each of its names (see the module docstring)."""

    torch_name: str
    keras_name: str | None
    h5_name: str | None
    original_name: str | None
    shape: tuple[int, ...]
    transpose: bool = False
    tied_to: str | None = None  # torch_name of the tensor this one shares storage with
    trainable: bool = True

    @property
    def keras_shape(self) -> tuple[int, ...]:
        """Shape of the Keras variable."""
        return tuple(reversed(self.shape)) if self.transpose else self.shape


class WeightMismatchError(ValueError):
    """A checkpoint does not fit a model: lists every missing, unexpected and mis-shaped tensor."""

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        context: str = "",
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"checkpoint does not match the model{f' ({context})' if context else ''}:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        for name, got, want in mismatched:
            lines.append(f"  mis-shaped: {name} has shape {list(got)}, the model needs {list(want)}")
        super().__init__("\n".join(lines))


def keras_layer_path(h5_name: str) -> str:
    """The Keras name of a `tf_model.h5` weight: transformers' list separator `_._` ("attentions_._0")
    becomes `_` ("attentions_0").

    Keras' torch backend keys a layer's parameters by variable path in a `torch.nn.ParameterDict`, whose
    keys can't contain "."; the `.keras` and `.weights.h5` formats address layers by attribute, not by
    name, so files saved with the old names still load.
    """
    return h5_name.replace("_._", "_")


# --- the table ----------------------------------------------------------------------------------
# Each row: (PyTorch name, tf_model.h5 name, shape, kind). Kinds: "dense" = Linear weight
# (Keras kernel transposed), "vector" = bias / LayerNorm (gamma, beta), "embedding" = lookup table.


def _linear(torch_module: str, keras_layer: str, out_dim: int, in_dim: int, bias: bool = True) -> list:
    rows = [(f"{torch_module}.weight", f"{keras_layer}/kernel", (out_dim, in_dim), "dense")]
    if bias:
        rows.append((f"{torch_module}.bias", f"{keras_layer}/bias", (out_dim,), "vector"))
    return rows


def _layer_norm(torch_module: str, keras_layer: str, dim: int) -> list:
    return [
        (f"{torch_module}.weight", f"{keras_layer}/gamma", (dim,), "vector"),
        (f"{torch_module}.bias", f"{keras_layer}/beta", (dim,), "vector"),
    ]


def _base_rows(config: XLMConfig) -> list:
    """The encoder's weights, PyTorch names relative to the base model."""
    dim, hidden = config.emb_dim, 4 * config.emb_dim
    rows = [
        ("position_embeddings.weight", "position_embeddings/embeddings",
         (config.max_position_embeddings, dim), "embedding"),
    ]
    if config.uses_lang_embeddings:
        rows.append(("lang_embeddings.weight", "lang_embeddings/embeddings", (config.n_langs, dim), "embedding"))
    rows.append(("embeddings.weight", "embeddings/weight", (config.vocab_size, dim), "embedding"))
    rows += _layer_norm("layer_norm_emb", "layer_norm_emb", dim)
    # Grouped per module list, as nn.ModuleList orders a state_dict.
    layers = range(config.n_layers)
    for i in layers:
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            rows += _linear(f"attentions.{i}.{lin}", f"attentions_._{i}/{lin}", dim, dim)
    for i in layers:
        rows += _layer_norm(f"layer_norm1.{i}", f"layer_norm1_._{i}", dim)
    for i in layers:
        rows += _linear(f"ffns.{i}.lin1", f"ffns_._{i}/lin1", hidden, dim)
        rows += _linear(f"ffns.{i}.lin2", f"ffns_._{i}/lin2", dim, hidden)
    for i in layers:
        rows += _layer_norm(f"layer_norm2.{i}", f"layer_norm2_._{i}", dim)
    return rows


def asm_cluster_sizes(config: XLMConfig) -> list[tuple[int, int]]:
    """(projection size, number of words) of each adaptive-softmax tail cluster."""
    cutoffs = list(config.asm_cutoffs) + [config.vocab_size]
    return [
        (int(config.emb_dim // (config.asm_div_value ** (k + 1))), cutoffs[k + 1] - cutoffs[k])
        for k in range(len(cutoffs) - 1)
    ]


def _lm_head_rows(config: XLMConfig) -> list:
    dim = config.emb_dim
    if not config.asm:
        # pred_layer.proj.weight is tied to the word embeddings: see weight_specs.
        return [("pred_layer.proj.bias", "pred_layer_._proj/bias", (config.vocab_size,), "vector")]
    n_clusters = len(config.asm_cutoffs)
    rows = _linear("pred_layer.proj.head", "pred_layer_._proj/head", config.asm_cutoffs[0] + n_clusters, dim)
    for k, (proj, words) in enumerate(asm_cluster_sizes(config)):
        rows += _linear(f"pred_layer.proj.tail.{k}.0", f"pred_layer_._proj/tail_._{k}_._0", proj, dim, bias=False)
        rows += _linear(f"pred_layer.proj.tail.{k}.1", f"pred_layer_._proj/tail_._{k}_._1", words, proj, bias=False)
    return rows


def _summary_rows(config: XLMConfig) -> list:
    if not config.summary_use_proj:
        return []
    out = config.num_labels if config.summary_proj_to_labels and config.num_labels > 0 else config.emb_dim
    return _linear("sequence_summary.summary", "sequence_summary/summary", out, config.emb_dim)


def _head_rows(config: XLMConfig, architecture: str) -> list:
    dim = config.emb_dim
    if architecture == "XLMModel":
        return []
    if architecture == "XLMWithLMHeadModel":
        return _lm_head_rows(config)
    if architecture == "XLMForSequenceClassification":
        return _summary_rows(config)
    if architecture == "XLMForMultipleChoice":
        return _summary_rows(config) + _linear("logits_proj", "logits_proj", 1, config.num_labels)
    if architecture == "XLMForTokenClassification":
        return _linear("classifier", "classifier", config.num_labels, dim)
    if architecture == "XLMForQuestionAnsweringSimple":
        return _linear("qa_outputs", "qa_outputs", config.num_labels, dim)
    if architecture == "XLMForQuestionAnswering":
        return (
            _linear("qa_outputs.start_logits.dense", "qa_outputs/start_logits/dense", 1, dim)
            + _linear("qa_outputs.end_logits.dense_0", "qa_outputs/end_logits/dense_0", dim, 2 * dim)
            + _layer_norm("qa_outputs.end_logits.LayerNorm", "qa_outputs/end_logits/LayerNorm", dim)
            + _linear("qa_outputs.end_logits.dense_1", "qa_outputs/end_logits/dense_1", 1, dim)
            + _linear("qa_outputs.answer_class.dense_0", "qa_outputs/answer_class/dense_0", dim, 2 * dim)
            + _linear("qa_outputs.answer_class.dense_1", "qa_outputs/answer_class/dense_1", 1, dim, bias=False)
        )
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")


def normalize_architecture(architecture: str) -> str:
    """Accept 'TFXLMModel' as well as 'XLMModel'; reject anything else with the list of choices."""
    name = architecture[2:] if architecture.startswith("TFXLM") else architecture
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    return name


def weight_specs(config: XLMConfig, architecture: str = "XLMModel") -> list[WeightSpec]:
    """Every weight of `architecture` built from `config`, in the PyTorch state_dict order.

    PyTorch names are those of that architecture's state_dict: the base model's own weights carry
    no prefix in `XLMModel` and a `transformer.` prefix in every head model, as in transformers.
    """
    architecture = normalize_architecture(architecture)
    is_base = architecture == "XLMModel"
    specs = []
    for torch_name, h5_name, shape, kind in _base_rows(config):
        full_torch = torch_name if is_base else f"{BASE_MODEL_PREFIX}.{torch_name}"
        full_h5 = f"{BASE_MODEL_PREFIX}/{h5_name}"
        trainable = not (torch_name == "position_embeddings.weight" and config.sinusoidal_embeddings)
        specs.append(WeightSpec(full_torch, keras_layer_path(full_h5), full_h5, torch_name, tuple(shape),
                                kind == "dense", trainable=trainable))
    for torch_name, h5_name, shape, kind in _head_rows(config, architecture):
        original = torch_name if torch_name.startswith("pred_layer.") else None
        specs.append(WeightSpec(torch_name, keras_layer_path(h5_name), h5_name, original, tuple(shape), kind == "dense"))
    if architecture == "XLMWithLMHeadModel" and not config.asm:
        # The output projection shares the word-embedding matrix (no Keras variable of its own);
        # untied (tie_word_embeddings=False, PyTorch only) it is a tensor of its own, with no Keras
        # or tf_model.h5 name: transformers' TF port always ties it.
        tied_to = f"{BASE_MODEL_PREFIX}.embeddings.weight" if config.tie_word_embeddings else None
        specs.insert(
            len(specs) - 1,
            WeightSpec("pred_layer.proj.weight", None, None, "pred_layer.proj.weight",
                       (config.vocab_size, config.emb_dim), tied_to=tied_to),
        )
    return specs


def check_keras_layout(config: XLMConfig, architecture: str) -> None:
    """ValueError when `architecture` under `config` has a weight the Keras stack and tf_model.h5 lack.

    Only an untied LM output projection (`tie_word_embeddings=False`) is such a weight: transformers'
    TF port always reads the word embeddings there, so neither layout has a place for it.
    """
    untied = [s.torch_name for s in weight_specs(config, architecture)
              if s.keras_name is None and s.tied_to is None]
    if untied:
        raise ValueError(
            f"{normalize_architecture(architecture)} with tie_word_embeddings=False has an output projection "
            f"of its own ({', '.join(untied)}); the Keras models and tf_model.h5 (transformers' TF layout) "
            "always tie it to the word embeddings. Use the PyTorch stack and its checkpoint formats "
            "(safetensors, bin) for an untied head."
        )


def ignored_on_load(config: XLMConfig, architecture: str) -> set[str]:
    """Checkpoint entries that are dropped silently (documented transformers artefacts)."""
    architecture = normalize_architecture(architecture)
    # transformers before 4.31 saved the non-persistent `position_ids` buffer.
    ignored = {"position_ids" if architecture == "XLMModel" else f"{BASE_MODEL_PREFIX}.position_ids"}
    if architecture == "XLMWithLMHeadModel" and config.asm:
        # transformers ties a spurious `pred_layer.proj.weight` onto the adaptive-softmax module.
        ignored.add("pred_layer.proj.weight")
    return ignored


def spec_index(specs: Iterable[WeightSpec], column: str) -> dict[str, WeightSpec]:
    """Map one name column ('torch_name', 'keras_name', 'h5_name', 'original_name') to its specs."""
    return {getattr(s, column): s for s in specs if getattr(s, column) is not None}


HEAD_MODULES = ("pred_layer", "sequence_summary", "logits_proj", "classifier", "qa_outputs")


@dataclass
class StateDictMatch:
    """A checkpoint lined up with a model's specs (see `match_state_dict`)."""

    tensors: dict[str, Any]  # by the model's torch_name
    missing: list[str]  # encoder weights the checkpoint lacks: an error
    unexpected: list[str]  # encoder weights the model has no place for: an error
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (name, got, wanted): an error
    fresh_head: list[str]  # head weights left at their initialisation: a warning
    unused_head: list[str]  # another head's weights, dropped: a warning
    # mis-shaped tensors left out on request (`drop_mismatched`): a warning
    dropped_mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def raise_for_errors(self, context: str = "") -> None:
        """Raise WeightMismatchError if anything but head weights is off."""
        if self.missing or self.unexpected or self.mismatched:
            raise WeightMismatchError(self.missing, self.unexpected, self.mismatched, context)

    def drop_mismatched(self) -> None:
        """Leave the mis-shaped tensors out, so that those weights keep their initialisation
        (transformers' `ignore_mismatched_sizes`, e.g. a classifier loaded with another num_labels)."""
        self.dropped_mismatched += self.mismatched
        for name, _, _ in self.mismatched:
            del self.tensors[name]
        self.mismatched = []

    def warn_about_heads(self, model_name: str, context: str = "", stacklevel: int = 3) -> None:
        """Warn about freshly initialised, unused and dropped mis-shaped weights (none: no warning)."""
        where = f"{model_name} from {context}" if context else model_name
        if self.fresh_head:
            warnings.warn(
                f"{where}: these head weights are not in the checkpoint and were freshly initialised "
                f"(train the model before using it): {', '.join(self.fresh_head)}",
                stacklevel=stacklevel,
            )
        if self.unused_head:
            warnings.warn(
                f"{where}: these checkpoint weights belong to another head and were not used: "
                f"{', '.join(self.unused_head)}",
                stacklevel=stacklevel,
            )
        if self.dropped_mismatched:
            shapes = ", ".join(f"{n} (checkpoint {list(a)}, model {list(b)})" for n, a, b in self.dropped_mismatched)
            warnings.warn(
                f"{where}: these weights have another shape in the checkpoint and were freshly initialised "
                f"(ignore_mismatched_sizes=True): {shapes}",
                stacklevel=stacklevel,
            )

    def loading_info(self) -> dict[str, list]:
        """transformers' `output_loading_info` dict (what was missing, unused or mis-shaped)."""
        return {
            "missing_keys": list(self.fresh_head),
            "unexpected_keys": list(self.unused_head),
            "mismatched_keys": list(self.dropped_mismatched),
            "error_msgs": [],
        }


def match_state_dict(
    specs: list[WeightSpec], state: Mapping[str, Any], config: XLMConfig, architecture: str
) -> StateDictMatch:
    """Line a PyTorch-named checkpoint (any head, or the base model) up with a model's specs.

    As with transformers, a base or other-head checkpoint loads into any head model: encoder
    weights must all fit, head weights that do not belong are reported as unused, and head weights
    the checkpoint lacks as freshly initialised. Tied weights are never required.
    """
    architecture = normalize_architecture(architecture)
    by_name = spec_index(specs, "torch_name")
    ignored = ignored_on_load(config, architecture)
    prefix = BASE_MODEL_PREFIX + "."
    tensors: dict[str, Any] = {}
    unexpected: list[str] = []
    unused_head: list[str] = []
    for key, value in state.items():
        relative = key[len(prefix):] if key.startswith(prefix) else key
        is_head = relative.split(".", 1)[0] in HEAD_MODULES
        if is_head:
            name = relative
        else:
            name = relative if architecture == "XLMModel" else prefix + relative
        if name in ignored:
            continue
        if name in by_name:
            tensors[name] = value
        elif is_head:
            unused_head.append(key)
        else:
            unexpected.append(key)
    mismatched = [
        (name, tuple(value.shape), by_name[name].shape)
        for name, value in tensors.items()
        if tuple(value.shape) != by_name[name].shape
    ]
    missing, fresh_head = [], []
    for spec in specs:
        if spec.tied_to is not None or spec.torch_name in tensors:
            continue
        is_head = spec.torch_name.split(".", 1)[0] in HEAD_MODULES
        (fresh_head if is_head else missing).append(spec.torch_name)
    return StateDictMatch(tensors, missing, unexpected, mismatched, fresh_head, unused_head)
