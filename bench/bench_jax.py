"""Keras on JAX against Keras on TensorFlow, both ours, on CPU: the jit-compiled forward and training step.

Keras fixes its backend when it is first imported, so each side runs in a worker process of its own
(`--worker tensorflow|jax`), both holding the same weights (one safetensors file), both alive for the
whole run. The driver times them in pairs of single calls, the order flipped every pair, each call timed
inside its worker; the speed-up (> 1: JAX is faster) is the median of the per-pair ratios with a
bootstrap 95 % interval, as in bench_tf.py.

Model: emb 512, 6 layers, 8 heads, vocabulary 30145 (bench_tf.py's), float32. Cases:
- forward 8×128: TFXLMModel, training=False; JAX: `jax.jit` of `model.stateless_call`, TensorFlow:
  `tf.function(jit_compile=True)` (XLA);
- fit step 8×128: TFXLMWithLMHeadModel, labels = inputs, dropout 0.1, Adam, `train_on_batch` after
  `compile(jit_compile=True)`: Keras' own compiled step on each backend (TensorFlow: XLA with our
  TensorFlow fast paths; JAX: the generic keras.ops path);
- the same fit step with masked-LM labels (15 % of positions labelled).

    python bench/bench_jax.py            # full (about 5 minutes on 2 cores)
    python bench/bench_jax.py --quick    # smoke: a tiny model, few pairs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL = dict(vocab_size=30145, emb_dim=512, n_layers=6, n_heads=8, max_position_embeddings=512)
QUICK = dict(vocab_size=1000, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=128)
CASES = ("forward", "fit step", "fit step MLM")


# --- worker -------------------------------------------------------------------------------------


def _case(name: str, directory: str, batch: int, seq: int):
    """A no-argument callable running one call of case `name` (compiled on first use)."""
    import keras

    from xlm.tf_backend import TFXLMModel, TFXLMWithLMHeadModel

    vocab = json.loads((Path(directory) / "config.json").read_text())["vocab_size"]
    ids = np.random.default_rng(0).integers(14, vocab, size=(batch, seq)).astype(np.int32)
    backend = keras.backend.backend()
    if name == "forward":
        model = TFXLMModel.from_pretrained(directory)
        if backend == "jax":
            import jax

            state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
            run = jax.jit(lambda state, x: model.stateless_call(*state, x, training=False)[0].last_hidden_state)
            return lambda: run(state, ids).block_until_ready()
        import tensorflow as tf

        run = tf.function(lambda x: model(x, training=False).last_hidden_state, jit_compile=True)
        tensor = tf.constant(ids)
        return lambda: run(tensor).numpy()
    model = TFXLMWithLMHeadModel.from_pretrained(directory, dropout=0.1, attention_dropout=0.1)
    labels = ids.copy()
    if name == "fit step MLM":
        labels[np.random.default_rng(2).random(ids.shape) >= 0.15] = -100
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=True)
    batch_data = {"input_ids": ids, "labels": labels}
    return lambda: model.train_on_batch(batch_data)


def worker(directory: str, batch: int, seq: int) -> None:
    """Answer "case" lines on stdin with the seconds one call took (a JSON number per line)."""
    cases = {}
    for line in sys.stdin:
        name = line.strip()
        if name not in cases:
            cases[name] = _case(name, directory, batch, seq)
        start = time.perf_counter()
        cases[name]()
        print(json.dumps(time.perf_counter() - start), flush=True)


# --- driver -------------------------------------------------------------------------------------


class Worker:
    def __init__(self, backend: str, directory: str, batch: int, seq: int) -> None:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", directory, str(batch), str(seq)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def call(self, case: str) -> float:
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited (code {self.process.wait()})")
        return float(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def paired(jax_side: Worker, tf_side: Worker, case: str, pairs: int) -> tuple[float, float, float, float, float]:
    """(JAX median s, TensorFlow median s, median speed-up JAX vs TF, 95 % interval low, high)."""
    for _ in range(2):  # compilation, then a warm call
        jax_side.call(case), tf_side.call(case)
    mine, other = [], []
    for i in range(pairs):
        order = ((jax_side, mine), (tf_side, other)) if i % 2 == 0 else ((tf_side, other), (jax_side, mine))
        for side, out in order:
            out.append(side.call(case))
    ratios = np.array(other) / np.array(mine)
    medians = np.median(np.random.default_rng(0).choice(ratios, size=(2000, len(ratios))), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(np.median(mine)), float(np.median(other)), float(np.median(ratios)), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and few pairs: a smoke test")
    parser.add_argument("--worker", nargs=3, metavar=("DIR", "BATCH", "SEQ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    import torch

    from xlm import XLMConfig
    from xlm.torch_backend import XLMWithLMHeadModel

    model_kwargs = QUICK if args.quick else FULL
    batch, seq = (2, 32) if args.quick else (8, 128)
    pairs = {"forward": 8 if args.quick else 60, "fit step": 4 if args.quick else 16, "fit step MLM": 4 if args.quick else 16}
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        XLMWithLMHeadModel(XLMConfig(**model_kwargs)).save_pretrained(directory)
        sides = {b: Worker(b, directory, batch, seq) for b in ("jax", "tensorflow")}
        try:
            import jax
            import tensorflow as tf

            print(f"JAX {jax.__version__}, TensorFlow {tf.__version__}, model {model_kwargs}, batch {batch}x{seq}")
            print(f"{'case':24s} {'pairs':>5s} {'JAX ms':>9s} {'TF-XLA ms':>10s} {'JAX speed-up':>13s} {'95% interval':>14s}")
            for case in CASES:
                mine, other, ratio, low, high = paired(sides["jax"], sides["tensorflow"], case, pairs[case])
                print(f"{case:24s} {pairs[case]:5d} {mine * 1e3:9.2f} {other * 1e3:10.2f} {ratio:12.3f}x "
                      f"{low:6.3f}-{high:.3f}x", flush=True)
        finally:
            for side in sides.values():
                side.close()


if __name__ == "__main__":
    main()
