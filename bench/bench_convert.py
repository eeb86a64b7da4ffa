"""Benchmark: convert an xlm-mlm-en-2048-shaped checkpoint PyTorch -> Keras -> PyTorch.

    python bench/bench_convert.py                 # full size: 666 M parameters, 2.7 GB float32
    python bench/bench_convert.py --quick         # a small shape, to try the script
    python bench/bench_convert.py --workdir /big/disk --keep

Writes a random checkpoint (model.safetensors, streamed tensor by tensor, so making it needs little
memory), then runs each conversion in a fresh child process and reports its wall time, throughput
and peak resident memory (VmHWM of the child: the interpreter and imports included, so the
baseline of a child that only imports is shown too). A plain file copy of the same checkpoint
gives the disk speed to compare with. Results go to stdout and, with --json, to a file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm.checkpoint import LazyTensor, save_state_dict  # noqa: E402
from xlm.config import XLMConfig  # noqa: E402
from xlm.weights import weight_specs  # noqa: E402

ARCHITECTURE = "XLMWithLMHeadModel"
#: xlm-mlm-en-2048 (FacebookAI/xlm-mlm-en-2048 config.json)
FULL = dict(vocab_size=30145, emb_dim=2048, n_layers=12, n_heads=16, max_position_embeddings=512, n_langs=1)
QUICK = dict(vocab_size=30145, emb_dim=256, n_layers=4, n_heads=8, max_position_embeddings=512, n_langs=1)


def make_checkpoint(directory: str, config: XLMConfig, seed: int = 0) -> float:
    """Write a random model.safetensors + config.json; returns seconds."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)

    def lazy(shape: tuple[int, ...]) -> LazyTensor:
        return LazyTensor(shape, np.float32, lambda: (rng.standard_normal(shape, dtype=np.float32) * 0.02), "random")

    state = {s.torch_name: lazy(s.shape) for s in weight_specs(config, ARCHITECTURE) if s.tied_to is None}
    config.save_pretrained(directory)
    save_state_dict(state, directory, config, ARCHITECTURE)
    return time.perf_counter() - start


def _child(task: str, source: str, output: str, queue: "multiprocessing.Queue") -> None:
    start = time.perf_counter()
    if task == "convert":
        from conversion.convert import convert_checkpoint

        convert_checkpoint(source, output, quiet=True)
    elif task == "copy":
        os.makedirs(output)
        for name in os.listdir(source):
            shutil.copyfile(os.path.join(source, name), os.path.join(output, name))
    elif task == "import":  # what a conversion imports, for the memory baseline
        import h5py  # noqa: F401
        import safetensors  # noqa: F401
        import tqdm.auto  # noqa: F401

        import conversion.convert  # noqa: F401
    seconds = time.perf_counter() - start
    queue.put((seconds, peak_rss()))


def peak_rss() -> int:
    """Peak resident memory of this process in bytes: VmHWM (per address space, so not inherited
    from the parent through fork + exec as ru_maxrss is); ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def run_child(task: str, source: str = "", output: str = "") -> tuple[float, int]:
    """(seconds, peak RSS bytes) of `task` in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(task, source, output, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{task} failed in the child process (exit {process.exitcode})")
    return queue.get()


def _size(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small shape (emb 256, 4 layers) instead of the full one")
    parser.add_argument("--workdir", help="where to write the checkpoints (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--emb-dim", type=int, help="override the shape's emb_dim")
    parser.add_argument("--n-layers", type=int, help="override the shape's number of layers")
    args = parser.parse_args()

    shape = dict(QUICK if args.quick else FULL)
    if args.emb_dim:
        shape["emb_dim"] = args.emb_dim
    if args.n_layers:
        shape["n_layers"] = args.n_layers
    config = XLMConfig(**shape)
    n_params = sum(int(np.prod(s.shape)) for s in weight_specs(config, ARCHITECTURE) if s.tied_to is None)
    workdir = tempfile.mkdtemp(prefix="bench-convert-", dir=args.workdir)
    try:
        source, keras, back, copy = (os.path.join(workdir, n) for n in ("pt", "keras", "pt_back", "copy"))
        made = make_checkpoint(source, config)
        size = _size(source)
        print(f"checkpoint: {n_params / 1e6:.1f} M parameters, {size / 1e9:.2f} GB (made in {made:.1f}s) in {workdir}")
        rows = {}
        rows["baseline (import only)"] = run_child("import")
        rows["file copy (disk speed)"] = run_child("copy", source, copy)
        shutil.rmtree(copy)
        rows["PyTorch -> Keras (safetensors -> h5)"] = run_child("convert", source, keras)
        rows["Keras -> PyTorch (h5 -> safetensors)"] = run_child("convert", keras, back)
        with open(os.path.join(source, "model.safetensors"), "rb") as a, open(os.path.join(back, "model.safetensors"), "rb") as b:
            identical = _same_stream(a, b)
        print(f"{'step':<40} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12}")
        results = []
        for name, (seconds, rss) in rows.items():
            rate = size / seconds / 1e6 if "import" not in name else float("nan")
            print(f"{name:<40} {seconds:>8.2f} {rate:>8.0f} {rss / 1e6:>12.0f}")
            results.append({"step": name, "seconds": seconds, "mb_per_s": rate, "peak_rss_bytes": rss})
        largest = max(int(np.prod(s.shape)) * 4 for s in weight_specs(config, ARCHITECTURE))
        print(f"round trip bit-identical: {identical}; largest tensor {largest / 1e6:.0f} MB")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"config": shape, "parameters": n_params, "bytes": size,
                           "largest_tensor_bytes": largest, "bit_identical": identical, "results": results}, f, indent=2)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _same_stream(a, b, block: int = 1 << 24) -> bool:
    while True:
        x, y = a.read(block), b.read(block)
        if x != y:
            return False
        if not x:
            return True


if __name__ == "__main__":
    main()
