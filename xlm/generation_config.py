"""GenerationConfig: the settings `generate()` reads, with transformers' names and defaults (backend-neutral)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from xlm._io import atomic_write_text

GENERATION_CONFIG_NAME = "generation_config.json"

#: The fields `generate()` reads and their defaults, as in transformers 4.57's GenerationConfig.
GENERATION_DEFAULTS: dict[str, Any] = {
    "max_length": 20,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "early_stopping": False,
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "length_penalty": 1.0,
    "num_return_sequences": 1,
    "output_scores": False,
    "output_logits": None,
    "return_dict_in_generate": False,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "use_cache": True,
}


class GenerationConfig:
    """What `generate()` does: lengths, search, sampling, penalties, special ids and outputs.

    The names and defaults of transformers' `GenerationConfig` (`max_length=20`, `top_k=50`, ...), so
    `GenerationConfig(max_new_tokens=10, num_beams=4)` ports unchanged. Keys `generate()` does not read (other
    transformers settings) are kept and saved but have no effect. Values are checked when `generate()` runs.
    """

    def __init__(self, **kwargs: Any) -> None:
        for key, default in GENERATION_DEFAULTS.items():
            setattr(self, key, kwargs.pop(key, copy.deepcopy(default)))
        self._from_model_config = bool(kwargs.pop("_from_model_config", False))
        kwargs.pop("transformers_version", None)
        kwargs.pop("xlm_version", None)
        for key, value in kwargs.items():  # transformers settings we don't model round-trip untouched
            setattr(self, key, value)

    @classmethod
    def from_model_config(cls, model_config: Any) -> "GenerationConfig":
        """The generation settings a model config holds (its special ids, and any legacy generation keys), as
        transformers builds `model.generation_config`."""
        values = {key: value for key, value in model_config.to_dict().items()
                  if key in GENERATION_DEFAULTS and value is not None}
        return cls(**values, _from_model_config=True)

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the given attributes that this config has; return the others."""
        unused = {}
        for key, value in kwargs.items():
            if hasattr(self, key):
                setattr(self, key, value)
            else:
                unused[key] = value
        return unused

    def copy(self) -> "GenerationConfig":
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """Every setting (transformers' generation_config.json keys)."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items() if not key.startswith("_")}

    def to_diff_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults (what transformers writes)."""
        default = GenerationConfig().to_dict()
        return {key: value for key, value in self.to_dict().items() if key not in default or default[key] != value}

    def to_json_string(self) -> str:
        from xlm import __version__

        return json.dumps({**self.to_diff_dict(), "xlm_version": __version__}, indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike, config_file_name: str = GENERATION_CONFIG_NAME) -> str:
        """Write `generation_config.json` into `save_directory` (created if needed); returns the file path."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_pretrained expects a directory, got the file {save_directory}")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, config_file_name)
        atomic_write_text(path, self.to_json_string())
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, config_file_name: str = GENERATION_CONFIG_NAME,
                        **kwargs: Any) -> "GenerationConfig":
        """Read `generation_config.json` from a directory (or a file path); `kwargs` override its values."""
        path = os.fspath(directory)
        if os.path.isdir(path):
            path = os.path.join(path, config_file_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {config_file_name} at {os.fspath(directory)}")
        with open(path, encoding="utf-8") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(values).__name__}")
        return cls(**{**values, **kwargs})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GenerationConfig {json.dumps(self.to_diff_dict(), indent=2, sort_keys=True)}"
