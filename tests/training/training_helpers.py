"""Shared pieces of the training tests: tiny models and synthetic token streams."""

from __future__ import annotations

import numpy as np

from xlm.training_data import TokenIds, make_lang2id, pretraining_batches
from xlm_testing import tiny_config

LANGS = ("de", "en", "fr")


def synthetic_corpus(n_sentences: int = 200, vocab_size: int = 99, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Aligned "sentences" with a learnable structure: each language is a fixed token mapping of one
    shared sentence, whose tokens follow a simple Markov chain over a small alphabet."""
    rng = np.random.default_rng(seed)
    alphabet = 20
    out: dict[str, list[np.ndarray]] = {lang: [] for lang in LANGS}
    offsets = {lang: 14 + 25 * i for i, lang in enumerate(LANGS)}
    assert max(offsets.values()) + alphabet <= vocab_size
    for _ in range(n_sentences):
        length = int(rng.integers(3, 12))
        tokens = [int(rng.integers(alphabet))]
        for _ in range(length - 1):  # mostly "next letter", sometimes a jump: learnable, not trivial
            tokens.append((tokens[-1] + 1) % alphabet if rng.random() < 0.8 else int(rng.integers(alphabet)))
        for lang in LANGS:
            out[lang].append(np.array(tokens, dtype=np.int64) + offsets[lang])
    return out


def lm_config(**overrides):
    """The tiny multilingual config of the training tests (emb 32, 2 layers, 3 languages)."""
    kwargs = dict(n_langs=3, lang2id=make_lang2id(LANGS), id2lang=dict(enumerate(sorted(LANGS))))
    kwargs.update(overrides)
    return tiny_config(**kwargs)


def lm_batches(config, objective: str = "mlm+tlm", batch_size: int = 8, bptt: int = 32, seed: int = 0, n_sentences: int = 200):
    """TrainingBatches over the synthetic corpus for `config`."""
    corpus = synthetic_corpus(n_sentences, config.vocab_size, seed=seed)
    return pretraining_batches(
        corpus, objective, make_lang2id(LANGS), TokenIds.from_config(config), batch_size=batch_size, bptt=bptt, seed=seed
    )
