"""The LM head's output projection on CPU: one `F.linear` against `project_to_vocabulary` (blocks of
4,096 words, concatenated), for the benchmark vocabulary (30,145 × 512) and 1 to 2,048 rows.

The two alternate call by call, and the median of each is printed with their ratio (> 1: the blocked
projection is faster) and the largest difference of their outputs (0: bit for bit the same).

    python bench/bench_vocab_projection.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from xlm.torch_backend.layers import project_to_vocabulary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(30145, 512, generator=generator) * 0.02
    bias = torch.randn(30145, generator=generator)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, weight {tuple(weight.shape)}")
    print(f"{'rows':>6}{'F.linear ms':>13}{'blocked ms':>12}{'speed-up':>10}{'max |diff|':>12}")
    with torch.inference_mode():
        for rows in (1, 2, 4, 8, 16, 128, 512, 1024, 2048):
            x = torch.randn(rows, 512, generator=generator)
            calls = {"plain": lambda: F.linear(x, weight, bias), "blocked": lambda: project_to_vocabulary(x, weight, bias)}
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(2):  # warm-up
                for call in calls.values():
                    call()
            for _ in range(40 if rows <= 128 else 9):
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
            plain, blocked = (statistics.median(times[name]) for name in calls)
            diff = (calls["plain"]() - calls["blocked"]()).abs().max().item()
            print(f"{rows:>6}{plain * 1e3:>13.2f}{blocked * 1e3:>12.2f}{plain / blocked:>9.2f}x{diff:>12.1e}", flush=True)


if __name__ == "__main__":
    main()
