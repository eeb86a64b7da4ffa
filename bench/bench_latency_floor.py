"""What bounds the PyTorch 1×16 latency: the whole model call against its 36 matrix products alone.

One `XLMModel` call (emb 512, 6 layers, float32, 2 threads) on 16 tokens multiplies the 16 hidden
vectors by every layer weight once: 36 products, 18.9 M weights, 75.5 MB. This script times, in
pairs of single calls with the order flipped every pair (medians):

- the model call, ours and transformers' (as `bench/bench_torch.py`'s latency case);
- the 36 products alone with `F.linear` (what both models run, through MKL);
- the same 36 products through oneDNN with weights packed ahead of time, and as 24 products with each
  layer's q, k and v weights packed as one (the fastest float32 kernel found in torch 2.13 for 16 rows;
  `torch.ops.mkl._mkl_linear` with MKL-packed weights was slower);
- the 36 products computed transposed, `addmm(b, W, xᵀ)`: MKL takes another kernel for that shape;
- `weight.sum()` over the 36 weight matrices: reading the 75.5 MB once, the memory floor.

    python bench/bench_latency_floor.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOKENS = 16


def timed(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each case, all cases called once per round, the order flipped every round."""
    names = list(cases)
    for fn in cases.values():
        fn(), fn()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    from bench_torch import build_pair, forward_case

    torch.set_num_threads(2)
    theirs_model, mine_model = build_pair("XLMModel")
    ours, theirs = forward_case((theirs_model, mine_model), 1, TOKENS)
    linears = [m for m in mine_model.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach(), m.bias.detach()) for m in linears]
    inputs = {w.shape[1]: torch.randn(TOKENS, w.shape[1]) for w, _ in weights}
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, TOKENS) for w, _ in weights]
    fused = []  # per layer: q|k|v as one product, then out_lin, lin1, lin2
    for attention, ffn in zip(mine_model.attentions, mine_model.ffns):
        qkv = [attention.q_lin, attention.k_lin, attention.v_lin]
        layer = [(torch.cat([m.weight for m in qkv]), torch.cat([m.bias for m in qkv]))]
        layer += [(m.weight, m.bias) for m in (attention.out_lin, ffn.lin1, ffn.lin2)]
        for w, b in layer:
            fused.append((torch.ops.mkldnn._reorder_linear_weight(w.detach(), TOKENS), b.detach(), w.shape[1]))
    columns = [(w, b[:, None]) for w, b in weights]
    megabytes = sum(w.numel() for w, _ in weights) * 4 / 1e6

    def products() -> None:
        for w, b in weights:
            F.linear(inputs[w.shape[1]], w, b)

    def onednn() -> None:
        for (w, b), p in zip(weights, packed):
            torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], p, b, "none", [], "")

    def onednn_fused_qkv() -> None:
        for p, b, n_in in fused:
            torch.ops.mkldnn._linear_pointwise(inputs[n_in], p, b, "none", [], "")

    def transposed() -> None:
        for w, b in columns:
            torch.addmm(b, w, inputs[w.shape[1]].t())

    def reads() -> None:
        for w, _ in weights:
            w.sum()

    with torch.inference_mode():
        result = timed({"model call, ours": ours, "model call, transformers": theirs,
                        "36 products, F.linear (MKL)": products, "36 products, oneDNN prepacked": onednn,
                        "24 products, oneDNN, qkv fused": onednn_fused_qkv,
                        "36 products, addmm(b, W, xT) (MKL)": transposed,
                        "read the weights once (sum)": reads}, rounds=200)
    print(f"torch {torch.__version__}, 2 threads, {len(weights)} weight matrices, {megabytes:.1f} MB, {TOKENS} tokens")
    for name, seconds in result.items():
        print(f"{name:34s} {seconds * 1e3:7.2f} ms   {megabytes / 1e3 / seconds:6.1f} GB/s of weights")
    half = result["model call, transformers"] / 2
    print(f"target (half of transformers' call): {half * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
