"""One prepared GPU run: parity on the GPU, PyTorch speed against transformers, the Keras-JAX train step.

Run by `bench/gpu/run.sh` (which installs the wheels the GPU machine lacks and sets KERAS_BACKEND=jax):

1. parity (`conversion.parity.run_parity`) for the bundled model and a random model shaped like
   xlm-mlm-en-2048 (emb 2048, 12 layers, 16 heads, vocabulary 30145, 512 positions): PyTorch-CUDA
   against Keras-JAX-CUDA, both against the PyTorch CPU result, with float32 pinned everywhere, and
   the bfloat16 report (PyTorch autocast, Keras mixed_bfloat16) against the float32 reference;
2. PyTorch speed of `xlm.torch_backend` against the transformers release installed, on the same
   weights, alternating ours / theirs: XLMModel forward and the XLMWithLMHeadModel training step
   (forward + backward + fused AdamW, masked-LM labels on 15 % of the positions, the rest -100), in
   float32 and under bfloat16 autocast, at sequence 128 and 512;
3. the Keras-JAX training step: our TFXLMWithLMHeadModel on JAX, compiled with jit_compile=True,
   timed over `train_on_batch` steps after the compiling one.

Writes OUT/gpu_report.json (everything, with devices, versions and precision settings) and
OUT/gpu_report.md (the tables). `--device cpu` runs the same on small shapes (CI: under a minute).

    python bench/gpu/gpu_bench.py --device gpu --out bench/out/gpu [--quick]

Exit status: 0 all ran and parity passed, 1 a parity check failed, 2 a part failed to run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before JAX starts: JAX would otherwise take 75 % of the GPU's memory and starve PyTorch.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from xlm._io import atomic_write_text  # noqa: E402

DEFAULT_MODEL = str(ROOT / "xlm" / "data" / "default_model")
BIG_GPU = dict(vocab_size=30145, emb_dim=2048, n_layers=12, n_heads=16, max_position_embeddings=512)
# --device cpu: scaled down (vocabulary too: its logits dominate a CPU training step) for CI
BIG_CPU = dict(vocab_size=8192, emb_dim=256, n_layers=2, n_heads=4, max_position_embeddings=512)


def settings(device: str, quick: bool) -> dict[str, Any]:
    """Shapes and repetitions of a run."""
    if device == "gpu":
        return dict(
            big=BIG_GPU, big_name="xlm-mlm-en-2048-shaped (random)",
            cases=[(16, 128), (4, 512)], rounds=1 if quick else 3, iters=3 if quick else 5, warmup=2,
            keras_case=(16, 128), keras_steps=5 if quick else 10,
            keras_dtypes=["float32"] if quick else ["float32", "mixed_bfloat16"],
            cross_device=True, budget_s=300 if quick else 330,
        )
    return dict(
        big=BIG_CPU, big_name="2048-shaped, scaled down to emb 256 / 2 layers / vocab 8192 (random)",
        cases=[(2, 64), (1, 256)], rounds=1, iters=1, warmup=1,
        keras_case=(2, 64), keras_steps=2, keras_dtypes=["float32"],
        cross_device=False, budget_s=600,
    )


class Budget:
    """Seconds left of the run's time budget: later rows are skipped (and recorded) once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self, reserve: float = 0.0) -> bool:
        """Whether less than `reserve` seconds are left."""
        return self.elapsed() + reserve > self.seconds


# --- environment --------------------------------------------------------------------------------


def environment(device: str) -> dict[str, Any]:
    """Versions, devices and GPU names of the frameworks this run uses."""
    import jax
    import keras
    import torch
    import transformers

    import xlm

    env: dict[str, Any] = {
        "python": platform.python_version(), "numpy": np.__version__, "xlm": xlm.__version__,
        "torch": torch.__version__, "torch cuda": torch.version.cuda, "jax": jax.__version__,
        "keras": keras.__version__, "keras backend": keras.backend.backend(),
        "transformers": transformers.__version__, "requested device": device,
        "jax devices": [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()],
        "cpu count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        env["torch gpu"] = torch.cuda.get_device_name(0)
    return env


def pin_float32() -> dict[str, Any]:
    """Full float32 in PyTorch and JAX (no TF32 or bfloat16 passes in float32 matmuls), as recorded."""
    import jax
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    jax.config.update("jax_default_matmul_precision", "highest")
    return {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch float32_matmul_precision": torch.get_float32_matmul_precision(),
            "jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


def check_gpu(device: str) -> None:
    """RuntimeError naming each framework that sees no GPU when the run asks for one."""
    if device != "gpu":
        return
    import jax
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)")
    try:
        jax.devices("gpu")
    except RuntimeError:
        problems.append(f"JAX sees no GPU (jax.devices(): {jax.devices()}; is jax installed with CUDA?)")
    if problems:
        raise RuntimeError("--device gpu: " + "; ".join(problems))


def make_big_model(config_kwargs: dict[str, Any], directory: str) -> str:
    """A randomly initialised XLMWithLMHeadModel (our PyTorch stack's initialisation), saved."""
    import torch

    from xlm import XLMConfig
    from xlm.torch_backend import XLMWithLMHeadModel

    torch.manual_seed(0)
    model = XLMWithLMHeadModel(XLMConfig(**config_kwargs))
    model.save_pretrained(directory)
    del model
    free_memory()
    return directory


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- 1. parity ----------------------------------------------------------------------------------


def parity(models: dict[str, str], device: str, cross_device: bool, budget: Budget) -> list[dict[str, Any]]:
    """Parity reports of each model: float32 on `device`, float32 against the CPU, bfloat16."""
    from conversion.parity import run_parity

    runs = [("float32", dict(dtype="float32"))]
    if cross_device:
        runs.append(("float32 vs CPU reference", dict(dtype="float32", reference_device="cpu")))
    runs.append(("bfloat16", dict(dtype="bfloat16")))
    results = []
    for name, directory in models.items():
        for label, kwargs in runs:
            if budget.spent():
                results.append({"model": name, "run": label, "skipped": "time budget spent"})
                continue
            report = run_parity(directory, device=device, keras_backend="jax", **kwargs)
            print(report.table(), flush=True)
            results.append({"model": name, "run": label, **summarise(report), "report": report.to_dict()})
            free_memory()
    return results


def summarise(report: Any) -> dict[str, Any]:
    """The numbers of one parity report a table row shows."""
    def worst(diffs: list) -> dict[str, float] | None:
        floats = [d for d in diffs if d.mismatches is None]
        if not floats:
            return None
        return {"max_abs": max(d.max_abs for d in floats), "max_rel": max(d.max_rel for d in floats)}

    return {
        "passed": report.passed, "dtype": report.dtype, "atol": report.atol, "rtol": report.rtol,
        "torch_device": report.torch_device, "keras_device": report.keras_device,
        "reference_device": report.reference_device, "keras_vs_reference": worst(report.diffs),
        "torch_vs_reference": worst(report.torch_diffs), "tensors": len(report.diffs) + len(report.torch_diffs),
        "seconds": round(report.seconds, 2),
    }


# --- 2. PyTorch: ours against transformers ------------------------------------------------------


def load_pair(directory: str, device: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(ours, theirs): our XLMWithLMHeadModel and transformers' on the same weights, on `device`."""
    import torch
    import transformers

    from xlm.torch_backend import XLMWithLMHeadModel

    ours = XLMWithLMHeadModel.from_pretrained(directory).to(device)
    config = ours.config.to_dict()
    hf_config = transformers.XLMConfig(**{k: v for k, v in config.items()
                                          if k not in ("model_type", "architectures", "transformers_version")})
    torch.manual_seed(0)
    theirs = transformers.XLMWithLMHeadModel(hf_config).to(device)
    result = theirs.load_state_dict(ours.state_dict(), strict=False)
    tied = {"pred_layer.proj.weight"}
    buffers = {name for name, _ in theirs.named_buffers()}  # e.g. position_ids: not weights
    missing, unexpected = set(result.missing_keys), set(result.unexpected_keys)
    if missing - tied - buffers or unexpected:
        raise RuntimeError(f"transformers' XLMWithLMHeadModel does not take our weights: missing "
                           f"{sorted(missing - tied - buffers)}, unexpected {sorted(unexpected)}")
    theirs.tie_weights()
    if theirs.pred_layer.proj.weight.data_ptr() != theirs.transformer.embeddings.weight.data_ptr():
        raise RuntimeError("transformers' LM head is not tied to the word embeddings after loading")
    loading = {"missing (tied)": sorted(missing & tied), "missing (buffers)": sorted(missing & buffers),
               "unexpected": sorted(unexpected)}
    return ours, theirs, loading


def sync_for(device: Any) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def alternate(ours: Callable[[], None], theirs: Callable[[], None], sync: Callable[[], None], warmup: int,
              rounds: int, iters: int) -> tuple[float, float]:
    """Median seconds per call of each side, timed in alternating blocks of `iters` calls."""
    for _ in range(warmup):
        ours(), theirs()
    sync()
    mine, other = [], []
    for _ in range(rounds):
        for fn, out in ((ours, mine), (theirs, other)):
            sync()
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            sync()
            out.append((time.perf_counter() - start) / iters)
    return statistics.median(mine), statistics.median(other)


def mlm_batch(batch: int, seq: int, vocab: int, device: Any, seed: int = 0) -> tuple[Any, Any]:
    """Random ids and masked-LM labels: 15 % of the positions labelled, the rest -100."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(14, vocab, (batch, seq), generator=generator)
    chosen = torch.rand((batch, seq), generator=generator) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return ids.to(device), labels.to(device)


def torch_speed(directory: str, device_name: str, cfg: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Forward and training-step timings of ours and theirs, float32 and bfloat16 autocast."""
    import torch

    device = torch.device("cuda" if device_name == "gpu" else "cpu")
    sync = sync_for(device)
    ours, theirs, loading = load_pair(directory, device)
    vocab = ours.config.vocab_size

    ids, _ = mlm_batch(*cfg["cases"][0], vocab, device)
    ours.eval(), theirs.eval()
    with torch.inference_mode():
        a = ours.transformer(input_ids=ids).last_hidden_state
        b = theirs.transformer(input_ids=ids).last_hidden_state
        same_weights_diff = float((a - b).abs().max())
    del a, b

    def autocast(dtype: str) -> Any:
        if dtype == "bfloat16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(model: Any, ids: Any, dtype: str) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode(), autocast(dtype):
                model.transformer(input_ids=ids)
        return call

    optimizers = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for m in (ours, theirs)}

    def train_step(model: Any, ids: Any, labels: Any, dtype: str) -> Callable[[], None]:
        optimizer = optimizers[id(model)]

        def call() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast(dtype):
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
        return call

    rows = []
    for kind in ("forward", "train step"):
        for model in (ours, theirs):
            model.train(kind == "train step")
        for dtype in ("float32", "bfloat16"):
            for batch, seq in cfg["cases"]:
                row: dict[str, Any] = {"kind": kind, "dtype": dtype, "batch": batch, "seq": seq,
                                       "tokens": batch * seq}
                if budget.spent(reserve=15):
                    rows.append({**row, "skipped": "time budget spent"})
                    continue
                ids, labels = mlm_batch(batch, seq, vocab, device)
                if kind == "forward":
                    fns = forward(ours, ids, dtype), forward(theirs, ids, dtype)
                else:
                    fns = train_step(ours, ids, labels, dtype), train_step(theirs, ids, labels, dtype)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                mine, other = alternate(*fns, sync, cfg["warmup"], cfg["rounds"], cfg["iters"])
                row.update(ours_ms=mine * 1e3, theirs_ms=other * 1e3, ours_tokens_per_s=batch * seq / mine,
                           theirs_tokens_per_s=batch * seq / other, speedup=other / mine)
                if device.type == "cuda":
                    row["peak_memory_gib_both"] = torch.cuda.max_memory_allocated() / 2**30
                rows.append(row)
                print(f"torch {kind:10s} {dtype:8s} {batch:3d}x{seq:<4d} ours {mine * 1e3:9.2f} ms  "
                      f"theirs {other * 1e3:9.2f} ms  speed-up {other / mine:5.2f}x", flush=True)
    device_name = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    ours = theirs = None  # the closures hold them too: unbind before handing the memory back
    optimizers.clear()
    free_memory()
    return {"device": device_name, "same_weights_forward_max_abs_diff": same_weights_diff, "loading": loading,
            "optimizer": "torch.optim.AdamW(lr=1e-4, fused=True), both sides", "rows": rows}


# --- 3. Keras on JAX ----------------------------------------------------------------------------


def keras_jax_train(directory: str, device: str, cfg: dict[str, Any], torch_rows: list[dict[str, Any]],
                    budget: Budget) -> list[dict[str, Any]]:
    """Seconds per jit-compiled `train_on_batch` step of our Keras model on JAX."""
    import jax
    import keras

    from xlm.tf_backend import TFXLMWithLMHeadModel

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"the Keras step is timed on JAX, but keras runs on {keras.backend.backend()!r}: "
                           "set KERAS_BACKEND=jax before running")
    batch, seq = cfg["keras_case"]
    rows = []
    for policy in cfg["keras_dtypes"]:
        row: dict[str, Any] = {"dtype policy": policy, "batch": batch, "seq": seq, "tokens": batch * seq,
                               "jit_compile": True, "optimizer": "keras.optimizers.AdamW(1e-4)"}
        if budget.spent(reserve=60):  # loading and compiling the 2048 model takes about a minute
            rows.append({**row, "skipped": "time budget spent"})
            continue
        with keras.device("gpu:0" if device == "gpu" else "cpu:0"):
            model = TFXLMWithLMHeadModel.from_pretrained(directory, dtype=policy)
            model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-4), jit_compile=True)
            vocab = model.config.vocab_size
            rng = np.random.default_rng(0)
            ids = rng.integers(14, vocab, (batch, seq)).astype(np.int32)
            labels = np.where(rng.random((batch, seq)) < 0.15, ids, -100).astype(np.int32)
            x = {"input_ids": ids, "labels": labels}

            def step(model: Any = model, x: dict = x) -> float:
                logs = model.train_on_batch(x=x, return_dict=True)  # returns floats: waits for the step
                jax.block_until_ready(model.trainable_variables[0].value)
                return float(logs["loss"])

            start = time.perf_counter()
            first_loss = step()
            compile_s = time.perf_counter() - start
            times, losses = [], []
            for _ in range(cfg["keras_steps"]):
                start = time.perf_counter()
                losses.append(step())
                times.append(time.perf_counter() - start)
            ran_on = sorted(model.trainable_variables[0].value.devices(), key=lambda d: d.id)[0]
        per_step = statistics.median(times)
        row.update(device=f"{ran_on.platform}:{ran_on.id} ({ran_on.device_kind})", first_step_s=compile_s,
                   step_ms=per_step * 1e3, tokens_per_s=batch * seq / per_step, steps=len(times),
                   first_loss=first_loss, last_loss=losses[-1], finite=bool(np.isfinite([first_loss, *losses]).all()))
        torch_dtype = "float32" if policy == "float32" else "bfloat16"
        twin = [r for r in torch_rows if r.get("kind") == "train step" and r.get("dtype") == torch_dtype
                and (r.get("batch"), r.get("seq")) == (batch, seq) and "ours_ms" in r]
        if twin:  # > 1: the Keras-JAX step is faster than our PyTorch one
            row["vs_torch_ours"] = twin[0]["ours_ms"] / row["step_ms"]
        rows.append(row)
        print(f"keras-jax train step {policy:15s} {batch}x{seq}: {per_step * 1e3:.2f} ms "
              f"(first step, compiling: {compile_s:.1f} s)", flush=True)
        del model, step
        jax.clear_caches()
        free_memory()
    return rows


# --- report -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """The report's tables as markdown."""
    env = report["environment"]
    lines = [
        f"# bench/gpu run on {report['device']}{', quick' if report['quick'] else ''}: {report['seconds']:.0f} s",
        "",
        f"torch {env.get('torch')} (CUDA {env.get('torch cuda')}), jax {env.get('jax')}, keras {env.get('keras')} "
        f"({env.get('keras backend')}), transformers {env.get('transformers')}; "
        f"GPU: {env.get('torch gpu', 'none')}; JAX devices: {', '.join(env.get('jax devices', []))}",
        "",
        "float32 pinned: " + ", ".join(f"{k}={v}" for k, v in report["precision"].items()),
        "",
        "## Parity (reference: our PyTorch stack in float32)",
        "",
        "| model | run | PyTorch on | Keras on | reference on | Keras max abs (rel) | PyTorch max abs (rel) "
        "| tolerance | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def worst(d: dict | None) -> str:
        return "-" if not d else f"{d['max_abs']:.2e} ({d['max_rel']:.1e})"

    for r in report["parity"]:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['model']} | {r['run']} | | | | | | | {r.get('skipped') or r.get('error')} |")
            continue
        lines.append(f"| {r['model']} | {r['run']} | {r['torch_device']} | {r['keras_device']} | "
                     f"{r['reference_device']} | {worst(r['keras_vs_reference'])} | {worst(r['torch_vs_reference'])} "
                     f"| {r['atol']:g} + {r['rtol']:g}·max | {'pass' if r['passed'] else 'FAIL'} |")
    torch_part = report.get("torch") or {}
    lines += [
        "",
        f"## PyTorch: xlm.torch_backend vs transformers {env.get('transformers')} ({torch_part.get('device', '')})",
        "",
        f"Same weights (forward max |ours - theirs| "
        f"{torch_part.get('same_weights_forward_max_abs_diff', float('nan')):.1e}); "
        f"{torch_part.get('optimizer', '')}; speed-up > 1: ours is faster.",
        "",
        "| case | dtype | batch x seq | ours ms | theirs ms | ours tokens/s | theirs tokens/s | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in torch_part.get("rows", []):
        shape = f"{r['batch']}x{r['seq']}"
        if "skipped" in r:
            lines.append(f"| {r['kind']} | {r['dtype']} | {shape} | | | | | {r['skipped']} |")
            continue
        lines.append(f"| {r['kind']} | {r['dtype']} | {shape} | {r['ours_ms']:.2f} | {r['theirs_ms']:.2f} | "
                     f"{r['ours_tokens_per_s']:,.0f} | {r['theirs_tokens_per_s']:,.0f} | {r['speedup']:.2f}x |")
    lines += [
        "",
        "## Keras 3 on JAX: TFXLMWithLMHeadModel train_on_batch, jit_compile=True",
        "",
        "| dtype policy | batch x seq | device | first step s | step ms | tokens/s | vs our PyTorch step | loss |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.get("keras_jax", []):
        shape = f"{r['batch']}x{r['seq']}"
        if "skipped" in r:
            lines.append(f"| {r['dtype policy']} | {shape} | | | | | | {r['skipped']} |")
            continue
        vs = f"{r['vs_torch_ours']:.2f}x" if "vs_torch_ours" in r else "-"
        lines.append(f"| {r['dtype policy']} | {shape} | {r['device']} | {r['first_step_s']:.1f} | "
                     f"{r['step_ms']:.2f} | {r['tokens_per_s']:,.0f} | {vs} | "
                     f"{r['first_loss']:.3f} -> {r['last_loss']:.3f} |")
    if report["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e['part']}: {e['error']}" for e in report["errors"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the parts, write OUT/gpu_report.json and OUT/gpu_report.md; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "gpu"), help="directory for the reports")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, float32 Keras step only")
    parser.add_argument("--only", default="parity,torch,keras",
                        help="comma-separated parts to run (default parity,torch,keras)")
    parser.add_argument("--budget-s", type=float, help="seconds after which remaining rows are skipped")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    unknown = parts - {"parity", "torch", "keras"}
    if unknown:
        parser.error(f"unknown parts {', '.join(sorted(unknown))}; expected parity, torch, keras")
    cfg = settings(args.device, args.quick)
    budget = Budget(args.budget_s or cfg["budget_s"])
    try:
        check_gpu(args.device)
    except RuntimeError as err:
        print(f"gpu_bench: error: {err}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {"device": args.device, "quick": args.quick, "settings": cfg,
                              "environment": environment(args.device), "precision": pin_float32(),
                              "parity": [], "torch": {},
                              "keras_jax": [], "errors": [], "seconds_by_part": {}}
    tmp = tempfile.mkdtemp(prefix="xlm-gpu-bench-")
    try:
        def part(name: str, fn: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - recorded, and the other parts still run
                traceback.print_exc()
                report["errors"].append({"part": name, "error": f"{type(err).__name__}: {err}"})
                return None
            finally:
                report["seconds_by_part"][name] = round(time.perf_counter() - start, 2)

        big = part("make model", lambda: make_big_model(cfg["big"], os.path.join(tmp, "big")))
        models = {"default_model (bundled)": DEFAULT_MODEL}
        if big:
            models[cfg["big_name"]] = big
        if "parity" in parts:
            report["parity"] = part("parity", lambda: parity(models, args.device, cfg["cross_device"], budget)) or []
        if big and "torch" in parts:
            report["torch"] = part("torch", lambda: torch_speed(big, args.device, cfg, budget)) or {}
        if big and "keras" in parts:
            torch_rows = report["torch"].get("rows", [])
            report["keras_jax"] = part(
                "keras", lambda: keras_jax_train(big, args.device, cfg, torch_rows, budget)) or []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = budget.elapsed()
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "gpu_report.json"), json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report)
    atomic_write_text(os.path.join(args.out, "gpu_report.md"), table)
    print(table)
    print(f"wrote {os.path.join(args.out, 'gpu_report.json')} and gpu_report.md in {report['seconds']:.0f} s")
    if report["errors"]:
        return 2
    return 0 if all(r.get("passed", True) for r in report["parity"]) else 1


if __name__ == "__main__":
    sys.exit(main())
