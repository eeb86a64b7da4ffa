"""PyTorch model speed: xlm.torch_backend vs transformers 4.57.6, same weights, same process.

Model: emb 512, 6 layers, 8 heads, vocabulary 30145 (transformers' XLMConfig defaults otherwise),
float32, 2 threads. The two sides run alternately (ours, theirs, ours, ...) and the ratio of the
median times is printed as a speed-up (> 1: ours is faster). Measured:

- forward 8×128 and 1×512: XLMModel under torch.inference_mode, `model(input_ids)` (padding
  inferred from pad_index on both sides), targets ≥ 1.0×;
- latency 1×16: the same call on one short sentence, target ≤ 0.5× transformers' time (≥ 2.0×);
- training step 8×128: XLMWithLMHeadModel forward + backward + AdamW step, labels = inputs, dropout
  0.1 (training mode), target ≥ 1.25×. transformers runs torch.optim.AdamW with its defaults (the
  for-loop implementation on CPU), ours the fused one (`fused=True`); the same-optimiser ratio
  (both fused) is printed too;
- the same training step with masked-LM labels: 15 % of the positions labelled, the rest -100, as in
  XLM's MLM / TLM pretraining (both fused AdamW; not one of the issue's targets, shown beside them).

    python bench/bench_torch.py            # full: 5 alternating rounds
    python bench/bench_torch.py --quick    # smoke: 1 round, fewer iterations
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

MODEL = dict(vocab_size=30145, emb_dim=512, n_layers=6, n_heads=8, max_position_embeddings=512)


def build_pair(architecture: str, seed: int = 0):
    """(transformers model, our model) of `architecture` with identical random weights."""
    import transformers

    from xlm import XLMConfig
    from xlm import torch_backend as ours

    config = XLMConfig(**MODEL)
    torch.manual_seed(seed)
    hf_config = transformers.XLMConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    theirs = getattr(transformers, architecture)(hf_config)
    mine = getattr(ours, architecture)(config)
    mine.load_weights(theirs.state_dict())
    return theirs, mine


def random_ids(batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(14, MODEL["vocab_size"], (batch, seq), generator=generator)


def alternate(ours: Callable[[], None], theirs: Callable[[], None], rounds: int, iters: int) -> tuple[float, float]:
    """Median seconds per call of each side, timed in alternating blocks of `iters` calls."""
    ours(), theirs()  # warm-up
    mine, other = [], []
    for _ in range(rounds):
        for fn, out in ((ours, mine), (theirs, other)):
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            out.append((time.perf_counter() - start) / iters)
    return statistics.median(mine), statistics.median(other)


def forward_case(pair, batch: int, seq: int) -> tuple[Callable[[], None], Callable[[], None]]:
    theirs, mine = (m.eval() for m in pair)
    ids = random_ids(batch, seq)

    def run(model):
        def call():
            with torch.inference_mode():
                model(ids)

        return call

    with torch.inference_mode():  # same weights, same answer
        diff = (theirs(ids).last_hidden_state - mine(ids).last_hidden_state).abs().max().item()
    assert diff < 1e-4, f"outputs differ by {diff}"
    return run(mine), run(theirs)


def training_case(pair, batch: int, seq: int, same_optimizer: bool, labelled: float = 1.0):
    theirs, mine = (m.train() for m in pair)
    ids = random_ids(batch, seq, seed=1)
    labels = ids.clone()
    labels[torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) >= labelled] = -100
    their_optimizer = torch.optim.AdamW(theirs.parameters(), lr=1e-4, fused=True if same_optimizer else None)
    my_optimizer = torch.optim.AdamW(mine.parameters(), lr=1e-4, fused=True)

    def run(model, optimizer):
        def step():
            loss = model(ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    return run(mine, my_optimizer), run(theirs, their_optimizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, few iterations")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else 5
    scale = 1 if args.quick else 3

    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, float32")
    print(f"model: {MODEL}")
    print(f"{'case':<34}{'ours ms':>10}{'transformers ms':>17}{'speed-up':>10}{'target':>8}")

    def report(name: str, times: tuple[float, float], target: float, tokens: int) -> None:
        mine, theirs = times
        ratio = theirs / mine
        flag = "ok" if ratio >= target else "MISS"
        print(
            f"{name:<34}{mine * 1e3:>10.1f}{theirs * 1e3:>17.1f}{ratio:>9.2f}x{target:>6.2f}x {flag}"
            f"   ({tokens / mine:,.0f} vs {tokens / theirs:,.0f} tokens/s)",
            flush=True,
        )

    base = build_pair("XLMModel")
    report("forward 8x128", alternate(*forward_case(base, 8, 128), rounds, 2 * scale), 1.0, 8 * 128)
    report("forward 1x512", alternate(*forward_case(base, 1, 512), rounds, 2 * scale), 1.0, 512)
    report("latency 1x16", alternate(*forward_case(base, 1, 16), rounds, 20 * scale), 2.0, 16)
    del base

    lm = build_pair("XLMWithLMHeadModel")
    iters = 1 if args.quick else 2
    report("train step 8x128", alternate(*training_case(lm, 8, 128, False), rounds, iters), 1.25, 8 * 128)
    # for reference: transformers given the same fused optimiser (its Trainer's default on torch >= 2.8)
    same_optimizer = alternate(*training_case(lm, 8, 128, True), rounds, iters)
    report("train step 8x128, both fused AdamW", same_optimizer, 1.0, 8 * 128)
    masked_lm = alternate(*training_case(lm, 8, 128, True, labelled=0.15), rounds, iters)
    report("train step 8x128, MLM labels (15%)", masked_lm, 1.25, 8 * 128)


if __name__ == "__main__":
    main()
