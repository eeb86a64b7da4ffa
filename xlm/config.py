"""XLMConfig: the hyper-parameters of an XLM model, shared by the PyTorch and Keras stacks.

Field names, defaults and the `config.json` format are those of Hugging Face's `XLMConfig`, so a
directory written by transformers loads here and transformers loads what we write.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from xlm._io import atomic_write_text

CONFIG_NAME = "config.json"
SUMMARY_TYPES = ("last", "first", "mean", "cls_index")

# Original facebookresearch/XLM adaptive-softmax settings; transformers' XLMConfig has no default.
DEFAULT_ASM_CUTOFFS = (8000, 20000)
DEFAULT_ASM_DIV_VALUE = 4.0

# Fields of transformers' PretrainedConfig that the XLM models read.
_BASE_DEFAULTS: dict[str, Any] = {
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
    "problem_type": None,
    "torchscript": False,
    "architectures": None,
    "tie_word_embeddings": True,
    "eos_token_id": None,
}


class XLMConfig:
    """Configuration of an XLM model (the names and defaults of Hugging Face's XLMConfig).

    Args:
        vocab_size: number of tokens in the vocabulary (alias `n_words`).
        emb_dim: hidden size (alias `hidden_size`).
        n_layers: number of Transformer layers (alias `num_hidden_layers`).
        n_heads: attention heads per layer (alias `num_attention_heads`); must divide `emb_dim`.
        dropout: dropout on embeddings, attention output and feed-forward output.
        attention_dropout: dropout on attention probabilities.
        gelu_activation: exact (erf) GELU in the feed-forward layers; ReLU when False.
        sinusoidal_embeddings: fixed sinusoidal position embeddings instead of learned ones.
        causal: causal (left-to-right) attention, for CLM models.
        asm: adaptive softmax output layer in the LM head.
        asm_cutoffs: adaptive-softmax cluster boundaries (original XLM's [8000, 20000] by default).
        asm_div_value: adaptive-softmax size divisor between clusters (original XLM's 4.0 by default).
        n_langs: number of languages.
        use_lang_emb: add a language embedding when `n_langs > 1`.
        max_position_embeddings: longest sequence the position embeddings cover.
        embed_init_std: standard deviation of the embedding initialisation.
        layer_norm_eps: epsilon of every LayerNorm.
        init_std: standard deviation of the Linear initialisation.
        bos_index, eos_index, pad_index, unk_index, mask_index: special token ids of the vocabulary.
        is_encoder: whether the model is an encoder (kept for compatibility).
        summary_type: how the sequence-summary head pools: "first", "last", "mean" or "cls_index".
        summary_use_proj, summary_activation, summary_proj_to_labels, summary_first_dropout:
            the sequence-summary head's projection, activation ("tanh" or None) and dropout.
        start_n_top, end_n_top: beam sizes of the SQuAD question-answering head.
        mask_token_id, lang_id, pad_token_id, bos_token_id: token and language ids used by
            generation and pipelines.
        lang2id, id2lang: language code <-> language id maps.
        num_labels, id2label, label2id, problem_type: classification-head settings; an unset
            `problem_type` is set by the first loss of a sequence classifier, as in transformers.
        torchscript: PyTorch models return tuples and clone (not tie) the output embeddings, so
            that `torch.jit.trace` can take them (transformers' field).

    Unknown keyword arguments are kept as attributes and written back by `save_pretrained`.

    Example:
        >>> config = XLMConfig(vocab_size=100, emb_dim=32, n_layers=2, n_heads=4)
        >>> config.hidden_size
        32
    """

    model_type = "xlm"
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "n_words": "vocab_size",
    }

    def __init__(
        self,
        vocab_size: int = 30145,
        emb_dim: int = 2048,
        n_layers: int = 12,
        n_heads: int = 16,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        gelu_activation: bool = True,
        sinusoidal_embeddings: bool = False,
        causal: bool = False,
        asm: bool = False,
        asm_cutoffs: list[int] | tuple[int, ...] | None = None,
        asm_div_value: float | None = None,
        n_langs: int = 1,
        use_lang_emb: bool = True,
        max_position_embeddings: int = 512,
        embed_init_std: float = 2048**-0.5,
        layer_norm_eps: float = 1e-12,
        init_std: float = 0.02,
        bos_index: int = 0,
        eos_index: int = 1,
        pad_index: int = 2,
        unk_index: int = 3,
        mask_index: int = 5,
        is_encoder: bool = True,
        summary_type: str = "first",
        summary_use_proj: bool = True,
        summary_activation: str | None = None,
        summary_proj_to_labels: bool = True,
        summary_first_dropout: float = 0.1,
        start_n_top: int = 5,
        end_n_top: int = 5,
        mask_token_id: int = 0,
        lang_id: int = 0,
        pad_token_id: int | None = 2,
        bos_token_id: int | None = 0,
        lang2id: dict[str, int] | None = None,
        id2lang: dict[int, str] | None = None,
        num_labels: int | None = None,
        id2label: dict[int, str] | None = None,
        label2id: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.emb_dim = emb_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.gelu_activation = gelu_activation
        self.sinusoidal_embeddings = sinusoidal_embeddings
        self.causal = causal
        self.asm = asm
        self.asm_cutoffs = list(asm_cutoffs) if asm_cutoffs is not None else list(DEFAULT_ASM_CUTOFFS)
        self.asm_div_value = float(asm_div_value) if asm_div_value is not None else DEFAULT_ASM_DIV_VALUE
        self.n_langs = n_langs
        self.use_lang_emb = use_lang_emb
        self.max_position_embeddings = max_position_embeddings
        self.embed_init_std = embed_init_std
        self.layer_norm_eps = layer_norm_eps
        self.init_std = init_std
        self.bos_index = bos_index
        self.eos_index = eos_index
        self.pad_index = pad_index
        self.unk_index = unk_index
        self.mask_index = mask_index
        self.is_encoder = is_encoder
        self.summary_type = summary_type
        self.summary_use_proj = summary_use_proj
        self.summary_activation = summary_activation
        self.summary_proj_to_labels = summary_proj_to_labels
        self.summary_first_dropout = summary_first_dropout
        self.start_n_top = start_n_top
        self.end_n_top = end_n_top
        self.mask_token_id = mask_token_id
        self.lang_id = lang_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.lang2id = dict(lang2id) if lang2id is not None else None
        self.id2lang = {int(k): v for k, v in id2lang.items()} if id2lang is not None else None

        if id2label is not None:
            self.id2label = {int(k): v for k, v in id2label.items()}
        else:
            n = 2 if num_labels is None else num_labels
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
        if num_labels is not None and num_labels != len(self.id2label):
            raise ValueError(
                f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} entries"
            )
        if label2id is not None:
            self.label2id = {k: int(v) for k, v in label2id.items()}
        else:
            self.label2id = {v: k for k, v in self.id2label.items()}

        for alias in self.attribute_map:  # hidden_size=..., n_words=... as transformers accepts
            if alias in kwargs:
                setattr(self, alias, kwargs.pop(alias))
        for key, value in _BASE_DEFAULTS.items():
            setattr(self, key, kwargs.pop(key, value))
        # Keys we do not model (transformers' generation settings, user additions) round-trip untouched.
        self._extra_keys = []
        for key, value in kwargs.items():
            if key in ("transformers_version", "xlm_version", "model_type"):
                continue
            setattr(self, key, value)
            self._extra_keys.append(key)
        self.validate()

    # --- aliases --------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: resolve transformers' attribute aliases.
        mapping = type(self).attribute_map
        if name in mapping:
            return getattr(self, mapping[name])
        raise AttributeError(f"'XLMConfig' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).attribute_map.get(name, name)
        super().__setattr__(name, value)

    @property
    def num_labels(self) -> int:
        """Number of labels of the classification heads (`len(id2label)`)."""
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        """Whether models return output objects rather than tuples by default (never under `torchscript`)."""
        return bool(self.return_dict) and not self.torchscript

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.emb_dim // self.n_heads

    @property
    def uses_lang_embeddings(self) -> bool:
        """Whether the model has a language-embedding table (`n_langs > 1 and use_lang_emb`)."""
        return self.n_langs > 1 and bool(self.use_lang_emb)

    # --- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        for name in ("vocab_size", "emb_dim", "n_heads", "max_position_embeddings", "n_langs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_layers, int) or self.n_layers < 0:
            raise ValueError(f"n_layers must be a non-negative integer, got {self.n_layers!r}")
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})"
            )
        for name in ("dropout", "attention_dropout", "summary_first_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("bos_index", "eos_index", "pad_index", "unk_index", "mask_index"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value} is outside the vocabulary [0, {self.vocab_size})")
        if self.summary_type not in SUMMARY_TYPES:
            raise ValueError(
                f"summary_type must be one of {', '.join(SUMMARY_TYPES)}, got {self.summary_type!r}"
            )
        if self.summary_activation not in (None, "tanh"):
            raise ValueError(f"summary_activation must be 'tanh' or None, got {self.summary_activation!r}")
        if self.lang2id is not None and len(self.lang2id) != self.n_langs:
            raise ValueError(
                f"lang2id has {len(self.lang2id)} languages but n_langs is {self.n_langs}"
            )
        if self.id2lang is not None and len(self.id2lang) != self.n_langs:
            raise ValueError(
                f"id2lang has {len(self.id2lang)} languages but n_langs is {self.n_langs}"
            )
        if self.lang2id is not None and self.id2lang is not None:
            for lang, idx in self.lang2id.items():
                if self.id2lang.get(idx) != lang:
                    raise ValueError(
                        f"lang2id and id2lang disagree: lang2id[{lang!r}] = {idx} but "
                        f"id2lang[{idx}] = {self.id2lang.get(idx)!r}"
                    )
        for mapping_name in ("lang2id",):
            mapping = getattr(self, mapping_name)
            if mapping is not None:
                bad = [k for k, v in mapping.items() if not 0 <= v < self.n_langs]
                if bad:
                    raise ValueError(f"{mapping_name} ids must be in [0, {self.n_langs}): {bad}")
        if self.asm:
            cutoffs = self.asm_cutoffs
            if (
                not cutoffs
                or any(b <= a for a, b in zip(cutoffs, cutoffs[1:]))
                or cutoffs[0] <= 0
                or cutoffs[-1] >= self.vocab_size
            ):
                raise ValueError(
                    f"asm_cutoffs must be strictly increasing integers in (0, vocab_size={self.vocab_size}), "
                    f"got {cutoffs}"
                )
            if self.asm_div_value <= 0:
                raise ValueError(f"asm_div_value must be positive, got {self.asm_div_value}")

    # --- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (the keys of transformers' config.json)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            out[key] = copy.deepcopy(value)
        out["model_type"] = self.model_type
        return out

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "XLMConfig":
        """Build a config from a dict (as read from config.json); `kwargs` override its values."""
        merged = dict(config_dict)
        merged.update(kwargs)
        model_type = merged.pop("model_type", "xlm")
        if model_type != "xlm":
            raise ValueError(f"config has model_type {model_type!r}, expected 'xlm'")
        return cls(**merged)

    def to_json_string(self) -> str:
        """The config as sorted, indented JSON, as transformers writes it."""
        from xlm import __version__

        d = self.to_dict()
        d["xlm_version"] = __version__
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `config.json` into `save_directory` (created if needed); returns the file path."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_pretrained expects a directory, got the file {save_directory}")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, CONFIG_NAME)
        atomic_write_text(path, self.to_json_string())
        return path

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: Any = None,
        create_pr: bool = False,
        revision: str | None = None,
        commit_description: str | None = None,
    ) -> Any:
        """Upload config.json to the Hub model repository `repo_id` (created if needed), as transformers'
        `push_to_hub`; needs `huggingface_hub` (see `xlm.hub.push_folder_to_hub`)."""
        from xlm.hub import push_folder_to_hub

        return push_folder_to_hub(
            self.save_pretrained, repo_id, commit_message=commit_message or "Upload config", private=private,
            token=token, create_pr=create_pr, revision=revision, commit_description=commit_description,
            what="the config",
        )

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "XLMConfig":
        """Read a config.json file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "XLMConfig":
        """Load from a directory holding config.json, a config.json file, or a hub model id."""
        path = os.fspath(name_or_path)
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no {CONFIG_NAME} in {name_or_path}")
        elif not os.path.isfile(path):
            from xlm.hub import resolve_file

            path = resolve_file(path, CONFIG_NAME)
        config = cls.from_json_file(path)
        for key, value in kwargs.items():
            setattr(config, key, value)
        config.validate()
        return config

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XLMConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"XLMConfig {self.to_json_string()}"
