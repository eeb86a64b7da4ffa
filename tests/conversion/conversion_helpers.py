"""Shared helpers of the conversion tests: tiny checkpoints written the way each tool writes them."""

from __future__ import annotations

import argparse
import os

import numpy as np

from xlm import XLMConfig
from xlm.checkpoint import save_state_dict
from xlm.weights import weight_specs
from xlm_testing import tiny_config

SENTENCES = [
    "the cat sat on the mat .",
    "le chat est assis sur le tapis .",
    "the dog sat on the log .",
    "le chien est assis sur la bûche .",
    "cats and dogs are friends .",
    "les chats et les chiens sont amis .",
] * 3


def random_state(config: XLMConfig, architecture: str, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Random float32 weights (normal, standard deviation `scale`) for every stored tensor of `architecture`."""
    rng = np.random.default_rng(seed)
    return {
        s.torch_name: (rng.standard_normal(s.shape) * scale).astype(np.float32)
        for s in weight_specs(config, architecture)
        if s.tied_to is None
    }


def write_model_dir(directory, config: XLMConfig, architecture: str, fmt: str = "safetensors", seed: int = 0,
                    scale: float = 1.0) -> dict:
    """config.json + weights in `fmt`, as our stacks' save_pretrained write them; returns the state."""
    state = random_state(config, architecture, seed, scale)
    config = XLMConfig.from_dict(config.to_dict())
    config.architectures = [architecture]
    config.save_pretrained(directory)
    save_state_dict(state, directory, config, architecture, format=fmt)
    return state


def tiny_bpe(num_merges: int = 40):
    """(vocab token -> id, merges) learned with xlm.bpe on a few English / French sentences."""
    from xlm.bpe import learn_bpe

    return learn_bpe(SENTENCES, num_merges, min_frequency=1)


def original_dictionary(vocab: dict[str, int]) -> dict[str, int]:
    """The original XLM dictionary (fastBPE words, `@@` continuation) behind a vocab.json."""
    word2id = {}
    for token, index in vocab.items():
        if index < 14:
            word2id[token] = index
        elif token.endswith("</w>"):
            word2id[token[:-4]] = index
        else:
            word2id[token + "@@"] = index
    return word2id


def original_config(vocab_size: int, **overrides) -> XLMConfig:
    """A config as an original en/fr MLM checkpoint would give it."""
    kwargs = dict(vocab_size=vocab_size, n_langs=2, lang2id={"en": 0, "fr": 1}, id2lang={0: "en", 1: "fr"},
                  max_position_embeddings=64)
    kwargs.update(overrides)
    return tiny_config("default", **kwargs)


def write_original_checkpoint(path, torch_state: dict, config: XLMConfig, word2id: dict[str, int], *,
                              params_as: str = "dict", prefix: str = "module.", part: str = "model",
                              extra_state: dict | None = None, extra_params: dict | None = None,
                              legacy_format: bool = False) -> dict:
    """A facebookresearch/XLM-style .pth: `model` state dict (base-model names, `module.` prefix,
    pred_layer at the top, the tied projection stored too), params with the types the original
    trainer leaves there (a tensor, numpy arrays, tuples), the dictionary and training counters.
    `legacy_format`: torch's pre-1.6 (non-zip) serialisation, as the released 2019 files use."""
    import torch

    state = {}
    for key, value in torch_state.items():
        key = key[len("transformer."):] if key.startswith("transformer.") else key
        state[prefix + key] = torch.as_tensor(np.asarray(value)).clone()
    if prefix + "pred_layer.proj.bias" in state and prefix + "pred_layer.proj.weight" not in state and not config.asm:
        state[prefix + "pred_layer.proj.weight"] = state[prefix + "embeddings.weight"]  # share_inout_emb
    state.update(extra_state or {})
    counts = {w: (0 if i < 14 else 1000 - i) for w, i in word2id.items()}
    params = dict(
        n_words=config.vocab_size, emb_dim=config.emb_dim, n_layers=config.n_layers, n_heads=config.n_heads,
        dropout=0.1, attention_dropout=0.1, gelu_activation=config.gelu_activation,
        sinusoidal_embeddings=config.sinusoidal_embeddings, use_lang_emb=config.use_lang_emb,
        asm=config.asm, asm_cutoffs=list(config.asm_cutoffs), asm_div_value=config.asm_div_value,
        n_langs=config.n_langs, langs=sorted(config.lang2id or {}), lang2id=config.lang2id, id2lang=config.id2lang,
        bos_index=0, eos_index=1, pad_index=2, unk_index=3, mask_index=5,
        share_inout_emb=True, use_memory=False, encoder_only=True,
        clm_steps=[], mlm_steps=[(lang, None) for lang in sorted(config.lang2id or {"en": 0})],
        mem_enc_positions=[], command="python train.py --exp_name test", exp_id="abc123",
        pred_probs=torch.FloatTensor([0.8, 0.1, 0.1]),
        mask_scores=np.maximum(np.array(list(counts.values()), dtype=np.float64), 1) ** -0.5,
    )
    params.update(extra_params or {})
    data = {
        "epoch": 3,
        "n_total_iter": 12000,
        "best_metrics": {"valid_mlm_ppl": np.float64(12.5)},
        "best_stopping_criterion": 1e12,
        part: state,
        "model_optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "num_updates": 12000, "params": [0, 1]}]},
        "dico_id2word": {i: w for w, i in word2id.items()},
        "dico_word2id": word2id,
        "dico_counts": counts,
        "params": argparse.Namespace(**params) if params_as == "namespace" else params,
    }
    torch.save(data, path, _use_new_zipfile_serialization=not legacy_format)
    return data


def write_codes(path, merges) -> None:
    """A fastBPE codes file: 'a b count' per line."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{a} {b} {1000 - i}\n" for i, (a, b) in enumerate(merges)))


def leftovers(parent) -> list[str]:
    """Temporary files or directories an atomic write may have left in `parent`."""
    return sorted(n for n in os.listdir(parent) if n.startswith(".") and (n.endswith(".tmp") or n.endswith(".old")))
