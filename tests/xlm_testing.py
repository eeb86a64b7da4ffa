"""Shared test helpers: the tiny config variants and random inputs every stack is checked on."""

from __future__ import annotations

import numpy as np

from xlm import XLMConfig

TINY = dict(
    vocab_size=99,
    emb_dim=32,
    n_layers=2,
    n_heads=4,
    max_position_embeddings=64,
    embed_init_std=32**-0.5,
)

#: Every config variant the issues name; each stack's tests run them all.
CONFIG_VARIANTS: dict[str, dict] = {
    "default": {},
    "multilang": dict(n_langs=3, use_lang_emb=True),
    "multilang_no_lang_emb": dict(n_langs=3, use_lang_emb=False),
    "sinusoidal": dict(sinusoidal_embeddings=True),
    "causal": dict(causal=True, n_langs=2),
    "relu": dict(gelu_activation=False),
    "asm": dict(asm=True, asm_cutoffs=[30, 60], asm_div_value=2.0),
}


def tiny_config(variant: str = "default", **overrides) -> XLMConfig:
    """A small random-model config of one of CONFIG_VARIANTS, with overrides."""
    kwargs = {**TINY, **CONFIG_VARIANTS[variant], **overrides}
    return XLMConfig(**kwargs)


def transformers_config(config: XLMConfig):
    """The same config as a transformers.XLMConfig (test-only reference)."""
    import transformers

    d = config.to_dict()
    d.pop("model_type", None)
    return transformers.XLMConfig(**d)


def make_inputs(config: XLMConfig, batch: int = 3, seq_len: int = 11, seed: int = 0, pad: bool = True) -> dict:
    """Random numpy inputs: ids with right padding on some rows, attention_mask, lengths, langs,
    token_type_ids and TLM-style restarted position_ids (int64)."""
    rng = np.random.default_rng(seed)
    lengths = np.full(batch, seq_len, dtype=np.int64)
    if pad and batch > 1:
        lengths[1:] = rng.integers(max(2, seq_len // 2), seq_len, size=batch - 1)
    first_free = 14  # ids below are specials in XLM vocabularies
    ids = rng.integers(first_free, config.vocab_size, size=(batch, seq_len), dtype=np.int64)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, config.pad_index)
    split = seq_len // 2
    positions = np.concatenate([np.arange(split), np.arange(seq_len - split)])[None, :].repeat(batch, 0)
    langs = np.where(np.arange(seq_len)[None, :] < split, 0, config.n_langs - 1).repeat(batch, 0)
    token_types = rng.integers(0, 2, size=(batch, seq_len), dtype=np.int64)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "lengths": lengths,
        "langs": langs.astype(np.int64),
        "token_type_ids": token_types,
        "position_ids": positions.astype(np.int64),
    }


class BackgroundRun:
    """A command started now in the background (stdout and stderr kept), for tests that collect it later:
    `result()` waits for it and gives (exit code, stdout, stderr); `stop()` ends it if it still runs."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str | None = None, timeout: float = 2400) -> None:
        import subprocess

        self.timeout = timeout
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env, cwd=cwd)
        self._result: tuple[int, str, str] | None = None

    def result(self) -> tuple[int, str, str]:
        if self._result is None:
            out, err = self.process.communicate(timeout=self.timeout)
            self._result = (self.process.returncode, out, err)
        return self._result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
