"""Peak memory of one training step with and without gradient checkpointing, PyTorch and Keras.

Model: XLMWithLMHeadModel / TFXLMWithLMHeadModel, emb 512, 6 layers, 8 heads, vocabulary 10,000,
dropout 0, float32, 2 threads; one masked-LM batch of 8 × 256 tokens (15 % of the positions
labelled, -100 elsewhere), AdamW (lr 1e-4, weight decay 0.01, epsilon 1e-8 on both). Every stack loads the same weights (one safetensors
file written by the driver), so the losses agree across stacks too. Stacks:
- torch: forward (`return_logits=False`, as our training loop) + backward + `AdamW.step` +
  `zero_grad(set_to_none=True)`, with `gradient_checkpointing_enable()` or without;
- keras-<backend>: `compile(optimizer=AdamW)` + `train_on_batch` on KERAS_BACKEND=tensorflow
  (tf.function graph, Keras' default on a CPU), tensorflow with `jit_compile=True` (XLA), jax
  (jit, always) and torch (eager autograd), with `gradient_checkpointing_enable()` (keras.remat) or
  without.

Each measurement is a fresh process (Keras fixes its backend at import). It builds the model and
runs one warm-up step, so optimizer slots, compiled functions and allocator pools exist; then it
collects garbage, calls glibc's `malloc_trim(0)`, reads VmRSS, resets the kernel's peak counter
(writes "5" to /proc/self/clear_refs), runs one step and reads VmHWM from /proc/self/status. The
figure is VmHWM - VmRSS: the resident memory the step adds at its peak. The workers run with
`MALLOC_MMAP_THRESHOLD_=131072`: a fixed threshold turns off glibc's dynamic one (which rises to
32 MiB after the first large frees and then serves activations from the heap, where freed memory
stays resident and later steps reuse it unseen), so every block of 128 KiB or more is mmapped and
returned on free, and RSS follows live memory (`--glibc-default` measures without it).
Repeats alternate the order (without, with; with, without; ...) and the table shows medians; the
loss of the measured step (after one AdamW step) must agree with and without within 1e-5.

    python bench/bench_memory.py --json bench/out/memory.json   # 3 repeats per stack (~15 minutes)
    python bench/bench_memory.py --quick                         # smoke: a tiny model, 1 repeat
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL = dict(vocab_size=10000, emb_dim=512, n_layers=6, n_heads=8, max_position_embeddings=512)
QUICK = dict(vocab_size=1000, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=128)
FULL_BATCH, QUICK_BATCH = (8, 256), (2, 32)
STACKS = {  # name: (KERAS_BACKEND or None for the PyTorch stack, jit_compile)
    "torch": (None, False),
    "keras-tensorflow": ("tensorflow", False),
    "keras-tensorflow-xla": ("tensorflow", True),
    "keras-jax": ("jax", True),
    "keras-torch": ("torch", False),
}
THREADS = 2
ADAMW = dict(lr=1e-4, weight_decay=0.01, eps=1e-8)  # torch's defaults, given to Keras' AdamW too


# --- worker -------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field} line: peak RSS needs Linux")
    return int(match.group(1))


def batch(vocab: int, rows: int, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, MLM labels): 15 % of the positions labelled with their id, -100 elsewhere."""
    rng = np.random.default_rng(0)
    ids = rng.integers(14, vocab, size=(rows, seq)).astype(np.int64)
    labels = np.where(rng.random(ids.shape) < 0.15, ids, -100)
    return ids, labels


def _torch_step(directory: str, checkpointing: bool, ids: np.ndarray, labels: np.ndarray):
    import torch

    from xlm.torch_backend import XLMWithLMHeadModel

    torch.set_num_threads(THREADS)
    model = XLMWithLMHeadModel.from_pretrained(directory).train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), **ADAMW)
    input_ids, target = torch.from_numpy(ids), torch.from_numpy(labels)

    def step() -> float:
        loss = model(input_ids, labels=target, return_logits=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step


def _keras_step(directory: str, checkpointing: bool, jit_compile: bool, ids: np.ndarray, labels: np.ndarray):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(THREADS)
    from xlm.tf_backend import TFXLMWithLMHeadModel

    model = TFXLMWithLMHeadModel.from_pretrained(directory)
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.compile(optimizer=keras.optimizers.AdamW(ADAMW["lr"], weight_decay=ADAMW["weight_decay"], epsilon=ADAMW["eps"]), jit_compile=jit_compile)
    data = {"input_ids": ids.astype(np.int32), "labels": labels.astype(np.int32)}
    return lambda: float(model.train_on_batch(data, return_dict=True)["loss"])


def worker(stack: str, checkpointing: bool, directory: str, rows: int, seq: int) -> dict:
    """Peak resident memory (MB) one training step adds, after a warm-up step, and both steps' losses."""
    vocab = json.loads((Path(directory) / "config.json").read_text())["vocab_size"]
    ids, labels = batch(vocab, rows, seq)
    backend, jit_compile = STACKS[stack]
    if backend is None:
        step = _torch_step(directory, checkpointing, ids, labels)
    else:
        step = _keras_step(directory, checkpointing, jit_compile, ids, labels)
    warmup_loss = step()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    loss = step()
    peak = _status_kb("VmHWM")
    return {"stack": stack, "checkpointing": checkpointing, "rss_before_mb": before / 1024,
            "peak_mb": (peak - before) / 1024, "warmup_loss": warmup_loss, "loss": loss}


# --- driver -------------------------------------------------------------------------------------


def measure(stack: str, checkpointing: bool, directory: str, rows: int, seq: int, glibc_default: bool) -> dict:
    """One worker process's result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(THREADS)}
    backend = STACKS[stack][0]
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    if not glibc_default:
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    command = [sys.executable, __file__, "--worker", stack, str(int(checkpointing)), directory, str(rows), str(seq)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{stack} worker (checkpointing={checkpointing}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and 1 repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS))
    parser.add_argument("--glibc-default", action="store_true", help="keep glibc's dynamic mmap threshold")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        stack, checkpointing, directory, rows, seq = args.worker
        print(json.dumps(worker(stack, bool(int(checkpointing)), directory, int(rows), int(seq))), flush=True)
        return
    import torch

    from xlm import XLMConfig
    from xlm.torch_backend import XLMWithLMHeadModel

    model_kwargs = QUICK if args.quick else FULL
    rows, seq = QUICK_BATCH if args.quick else FULL_BATCH
    repeats = 1 if args.quick else args.repeats
    machine = f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    print(f"{machine}; torch {torch.__version__}; model {model_kwargs}, dropout 0, batch {rows}x{seq}, "
          f"MLM 15 %, AdamW; {THREADS} threads; {repeats} repeats; "
          f"malloc: {'glibc default' if args.glibc_default else 'MALLOC_MMAP_THRESHOLD_=131072'}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        XLMWithLMHeadModel(XLMConfig(**model_kwargs, dropout=0.0, attention_dropout=0.0)).save_pretrained(directory)
        for stack in args.stacks:
            for repeat in range(repeats):
                for checkpointing in ((False, True) if repeat % 2 == 0 else (True, False)):
                    result = measure(stack, checkpointing, directory, rows, seq, args.glibc_default)
                    results.append({**result, "repeat": repeat})
                    print(f"  {stack:22s} repeat {repeat} checkpointing={int(checkpointing)}: "
                          f"{result['peak_mb']:8.1f} MB above {result['rss_before_mb']:7.1f} MB, "
                          f"loss {result['loss']:.6f}", flush=True)
    print(f"{'stack':22s}{'without MB':>11s}{'with MB':>9s}{'with/without':>13s}"
          f"{'loss without':>14s}{'loss with':>11s}{'|diff|':>9s}")
    table = []
    for stack in args.stacks:
        side = {c: [r for r in results if r["stack"] == stack and r["checkpointing"] == c] for c in (False, True)}
        peak = {c: statistics.median(r["peak_mb"] for r in side[c]) for c in side}
        loss = {c: side[c][0]["loss"] for c in side}
        diff = max(abs(a["loss"] - b["loss"]) for a in side[False] for b in side[True])
        row = {"stack": stack, "peak_mb_without": peak[False], "peak_mb_with": peak[True],
               "ratio": peak[True] / peak[False], "loss_without": loss[False], "loss_with": loss[True],
               "max_loss_diff": diff,
               "peaks_without": [r["peak_mb"] for r in side[False]], "peaks_with": [r["peak_mb"] for r in side[True]]}
        table.append(row)
        print(f"{stack:22s}{peak[False]:11.1f}{peak[True]:9.1f}{row['ratio']:13.2f}"
              f"{loss[False]:14.6f}{loss[True]:11.6f}{diff:9.1e}")
    if any(row["max_loss_diff"] > 1e-5 for row in table):
        print("WARNING: a loss with checkpointing differs from the one without by more than 1e-5")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "model": model_kwargs, "batch": [rows, seq], "repeats": repeats,
                       "glibc_default": args.glibc_default, "rows": table, "runs": results}, handle, indent=2)


if __name__ == "__main__":
    main()
