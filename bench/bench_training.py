"""Pretraining throughput of both frameworks, as model-FLOP utilisation of the measured matmul peak.

The benchmark config (emb 512, 6 layers, 8 heads, vocabulary 30,145, float32, 2 threads) trains
XLMWithLMHeadModel with MLM on real text: the bundled en/fr/de corpus slice, tokenised with the
bundled test tokenizer, packed into streams of 128 tokens, 8 rows per step (1,024 tokens, no
padding), 15 % of them predicted. Each framework runs its own training loop from this library
(`xlm.torch_backend.training.train`, and `xlm.tf_backend.training.train`, which is `model.fit`),
with AdamW, warmup, gradient clipping and dropout 0.1, and reports its steady-state step time,
which is the median over the steps after the first few (compilation and warm-up).

The reference is the machine's float32 matmul rate, measured in the same run with both frameworks'
matmul (2,048 × 2,048 × 2,048, the best of several), between the training runs. Model FLOPs per
step: 3 × the forward pass (forward + backward), with the forward pass counted as 2 × the weights'
multiply-adds over every token (q, k, v, out, two FFN layers) plus the attention scores and context
(2 × 2 × rows × seq² × emb per layer), and the full-vocabulary output projection over the predicted
positions only (the mean count over the timed steps), as the original XLM computes it. (Before
session 4 it was counted over every position, which both loops then computed.)

    python bench/bench_training.py            # 16 steps per framework and setting
    python bench/bench_training.py --quick    # smoke: a tiny model, 6 steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL = dict(vocab_size=30145, emb_dim=512, n_layers=6, n_heads=8, max_position_embeddings=512)
QUICK = dict(vocab_size=30145, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=512)
ROWS, BPTT, WARMUP_STEPS = 8, 128, 4


def batches(model_kwargs: dict):
    """MLM batches of the bundled corpus slice, with the model's config."""
    from xlm import XLMConfig, XLMTokenizer
    from xlm.training_data import (
        TokenIds,
        default_corpus_path,
        encode_sentences,
        make_lang2id,
        pretraining_batches,
        read_parallel_corpus,
    )

    tokenizer = XLMTokenizer.from_pretrained(str(ROOT / "xlm" / "data" / "test_tokenizer"))
    corpus = read_parallel_corpus(default_corpus_path())
    lang2id = make_lang2id(corpus.languages)
    config = XLMConfig(**model_kwargs, n_langs=len(lang2id), lang2id=lang2id, dropout=0.1, attention_dropout=0.1)
    encoded = {lang: encode_sentences(tokenizer, corpus.texts[lang], lang) for lang in corpus.languages}
    return config, pretraining_batches(encoded, "mlm", lang2id, TokenIds.from_config(config), ROWS, bptt=BPTT)


def step_flops(config, predicted: float) -> float:
    """Model FLOPs of one training step (forward + backward) on ROWS × BPTT tokens, `predicted` of them
    predicted through the output projection."""
    d, tokens = config.emb_dim, ROWS * BPTT
    per_layer = 2 * tokens * 12 * d * d + 2 * 2 * ROWS * BPTT * BPTT * d
    forward = config.n_layers * per_layer + 2 * predicted * d * config.vocab_size
    return 3.0 * forward


def matmul_peak(framework: str, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate (FLOP/s) of `framework` on n × n × n."""
    if framework == "torch":
        import torch

        a, b = torch.randn(n, n), torch.randn(n, n)
        run = lambda: torch.mm(a, b)  # noqa: E731
    else:
        import tensorflow as tf

        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        run = lambda: tf.linalg.matmul(a, b).numpy()  # noqa: E731
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def torch_steps(config, data, steps: int) -> list[float]:
    import torch

    from xlm.torch_backend import XLMWithLMHeadModel
    from xlm.torch_backend.training import train

    torch.manual_seed(0)
    model = XLMWithLMHeadModel(config)
    result = train(model, data, steps, learning_rate=1e-4, warmup_steps=2, progress=False, device="cpu")
    return [m["seconds"] for m in result.metrics]


def keras_steps(config, data, steps: int, jit_compile: bool) -> list[float]:
    import keras

    from xlm.tf_backend import TFXLMWithLMHeadModel
    from xlm.tf_backend.training import train

    keras.utils.set_random_seed(0)
    model = TFXLMWithLMHeadModel(config)
    result = train(model, data, steps, learning_rate=1e-4, warmup_steps=2, progress=False, jit_compile=jit_compile)
    return [m["seconds"] for m in result.metrics]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and 6 steps: a smoke test")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import tensorflow as tf
    import torch

    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    steps = 6 if args.quick else 16
    config, data = batches(QUICK if args.quick else FULL)
    from xlm.training_data import count_targets

    predicted = statistics.mean(count_targets(data[step]) for step in range(WARMUP_STEPS, steps))
    flops = step_flops(config, predicted)
    print(f"torch {torch.__version__}, tensorflow {tf.__version__}, {args.threads} threads, float32; "
          f"{ROWS}x{BPTT} MLM rows per step, {predicted:.0f} predicted, {flops / 1e9:.1f} GFLOP per step")

    peaks = {"torch": [matmul_peak("torch")], "tensorflow": [matmul_peak("tensorflow")]}
    runs = [("PyTorch loop", "torch", lambda: torch_steps(config, data, steps)),
            ("Keras model.fit", "tensorflow", lambda: keras_steps(config, data, steps, False)),
            ("Keras model.fit, XLA", "tensorflow", lambda: keras_steps(config, data, steps, True))]
    rows = []
    for name, framework, run in runs:
        seconds = statistics.median(run()[WARMUP_STEPS:])
        peaks[framework].append(matmul_peak(framework))  # the reference, measured between the runs
        rows.append((name, framework, seconds))
    peak = {k: max(v) for k, v in peaks.items()}
    print(f"float32 matmul peak (2048^3, best of the runs): torch {peak['torch'] / 1e9:.0f} GFLOP/s, "
          f"tensorflow {peak['tensorflow'] / 1e9:.0f} GFLOP/s")
    print(f"{'training loop':<24}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'MFU':>7}")
    for name, framework, seconds in rows:
        rate = flops / seconds
        print(f"{name:<24}{seconds * 1e3:>9.0f}{ROWS * BPTT / seconds:>10,.0f}{rate / 1e9:>9.1f}"
              f"{rate / peak[framework]:>7.0%}")


if __name__ == "__main__":
    main()
