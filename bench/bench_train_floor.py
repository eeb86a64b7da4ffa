"""What bounds the PyTorch training step (8×128, LM head, labels = inputs): its matrix products.

Times one step of ours and of transformers 4.57.6 on the same weights (as `bench/bench_torch.py`'s
"train step" case, alternating), then profiles 3 steps of each with `torch.profiler` and sums the
self time of the matrix products (`mm`, `addmm`, `bmm`). Both models run the same products, so the
speed-up can never exceed transformers' step over the products alone; the 1.25× target needs the
rest of our step (softmax, dropout masks, layer norms, optimiser, copies) to fit in what is left.

    python bench/bench_train_floor.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.profiler import profile  # noqa: E402

PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm")
TARGET = 1.25


def product_share(step: Callable[[], None], steps: int = 3) -> tuple[float, float]:
    """(seconds a step in matrix products, seconds a step in all operators) over `steps` profiled steps."""
    with profile() as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS) / 1e6 / steps
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
    return products, total


def main() -> None:
    from bench_torch import alternate, build_pair, training_case

    torch.set_num_threads(2)
    mine, theirs = training_case(build_pair("XLMWithLMHeadModel"), 8, 128, same_optimizer=False)
    mine_s, theirs_s = alternate(mine, theirs, rounds=5, iters=2)
    print(f"torch {torch.__version__}, 2 threads, float32, train step 8x128, labels = inputs")
    print(f"step, ours            {mine_s * 1e3:8.1f} ms")
    print(f"step, transformers    {theirs_s * 1e3:8.1f} ms   speed-up {theirs_s / mine_s:.2f}x")
    for name, step in (("ours", mine), ("transformers", theirs)):
        products, in_ops = product_share(step)
        print(f"profiled, {name:13s} time in operators {in_ops * 1e3:7.1f} ms, "
              f"matrix products {products * 1e3:7.1f} ms")
        if name == "ours":
            ours_products = products
    rest = mine_s - ours_products
    print(f"ceiling, if all but our products took no time: {theirs_s / ours_products:.2f}x; "
          f"{TARGET}x needs the rest of our step within {(theirs_s / TARGET - ours_products) * 1e3:.1f} ms "
          f"(now {rest * 1e3:.1f} ms: softmax, dropout masks, layer norms, optimiser, copies, Python)")


if __name__ == "__main__":
    main()
