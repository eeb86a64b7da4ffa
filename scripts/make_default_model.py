"""Make the bundled default model (xlm/data/default_model/), reproducibly.

    python scripts/make_default_model.py

A tiny random XLMWithLMHeadModel (emb_dim 24, 2 layers, 4 heads, 128 positions, languages de / en /
fr) over the test BPE vocabulary in xlm/data/test_tokenizer/. Weights come from numpy's seeded
PCG64 generator, so every run writes the same bytes: config.json, model.safetensors, vocab.json,
merges.txt, tokenizer_config.json and special_tokens_map.json. It is what `python -m conversion`
converts and cross-checks when given no arguments; it is not a trained model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm._io import atomic_directory  # noqa: E402
from xlm.checkpoint import save_state_dict  # noqa: E402
from xlm.config import XLMConfig  # noqa: E402
from xlm.weights import weight_specs  # noqa: E402

TOKENIZER_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")
OUTPUT_DIR = os.path.join(ROOT, "xlm", "data", "default_model")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
ARCHITECTURE = "XLMWithLMHeadModel"
SEED = 20190122  # the XLM paper's arXiv date


def default_config(vocab_size: int, lang2id: dict[str, int]) -> XLMConfig:
    emb_dim = 24
    return XLMConfig(
        vocab_size=vocab_size,
        emb_dim=emb_dim,
        n_layers=2,
        n_heads=4,
        max_position_embeddings=128,
        n_langs=len(lang2id),
        lang2id=lang2id,
        id2lang={i: lang for lang, i in lang2id.items()},
        embed_init_std=emb_dim ** -0.5,
        architectures=[ARCHITECTURE],
    )


def random_weights(config: XLMConfig, seed: int = SEED) -> dict[str, np.ndarray]:
    """transformers' initialisation scheme (normal embeddings and kernels), with small random
    LayerNorm scales and biases so that no tensor is trivially 0 or 1 in the parity check."""
    rng = np.random.default_rng(seed)
    state = {}
    for spec in weight_specs(config, ARCHITECTURE):
        if spec.tied_to is not None:
            continue
        if spec.torch_name.endswith("embeddings.weight"):
            value = rng.normal(0.0, config.embed_init_std, spec.shape)
            if spec.torch_name.endswith(".embeddings.weight"):
                value[config.pad_index] = 0.0  # padding_idx row, as nn.Embedding initialises it
        elif len(spec.shape) == 2:
            value = rng.normal(0.0, config.init_std * 5, spec.shape)
        elif ".layer_norm" in spec.torch_name and spec.torch_name.endswith(".weight"):
            value = 1.0 + rng.normal(0.0, 0.1, spec.shape)
        else:
            value = rng.normal(0.0, 0.1, spec.shape)
        state[spec.torch_name] = value.astype(np.float32)
    return state


def main() -> None:
    with open(os.path.join(TOKENIZER_DIR, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(TOKENIZER_DIR, "tokenizer_config.json"), encoding="utf-8") as f:
        lang2id = json.load(f)["lang2id"]
    config = default_config(len(vocab), lang2id)
    with atomic_directory(OUTPUT_DIR, force=True) as tmp:
        config.save_pretrained(tmp)
        save_state_dict(random_weights(config), tmp, config, ARCHITECTURE)
        for name in TOKENIZER_FILES:
            shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(
                "# Default model\n\nA tiny random XLMWithLMHeadModel for `python -m conversion` (convert it to Keras and\n"
                "cross-check both stacks). Not trained. Re-make it, byte for byte, with\n"
                "`python scripts/make_default_model.py`; the tokenizer files are copies of `../test_tokenizer/`.\n"
            )
    size = sum(os.path.getsize(os.path.join(OUTPUT_DIR, n)) for n in os.listdir(OUTPUT_DIR))
    print(f"wrote {OUTPUT_DIR}: {len(os.listdir(OUTPUT_DIR))} files, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
