"""Tokenizer throughput of two git revisions of `xlm`, for refactors that must not change speed.

    python bench/bench_tokenizer_revisions.py c7f20a0 HEAD          # 8 alternating pairs
    python bench/bench_tokenizer_revisions.py c7f20a0 HEAD --pairs 12

Each revision's `xlm/` is extracted with `git archive` into a temporary directory. Pairs of fresh
processes (the first revision, then the second) each encode 2,000 bundled en/fr/de sentences in padded
batches of 32, three times from a freshly built tokenizer, and report their best time and a digest of the
outputs. Prints the median per-pair speed ratio (second / first; above 1 means the second is faster), the
range of the ratios, and whether the outputs are identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import gzip, hashlib, os, sys, time
sys.path.insert(0, sys.argv[1])
import xlm
from xlm.tokenizer import XLMTokenizer
assert xlm.__file__.startswith(sys.argv[1]), xlm.__file__
data = os.path.join(sys.argv[1], "xlm", "data")
with gzip.open(os.path.join(data, "lohelp", "en-fr-de-slice.tsv.gz"), "rt", encoding="utf-8") as handle:
    rows = [line.rstrip("\n").split("\t") for line in handle]
columns = [rows[0].index(lang) for lang in ("en", "fr", "de")]
texts = [row[c] for row in rows[1:] for c in columns][:2000]
best = float("inf")
for _ in range(3):
    tokenizer = XLMTokenizer(os.path.join(data, "test_tokenizer", "vocab.json"),
                             os.path.join(data, "test_tokenizer", "merges.txt"))
    start = time.perf_counter()
    outputs = [dict(tokenizer(texts[i:i + 32], padding=True)) for i in range(0, len(texts), 32)]
    best = min(best, time.perf_counter() - start)
print(best, hashlib.md5(repr(outputs).encode()).hexdigest())
"""


def extract(revision: str, into: str) -> str:
    """`xlm/` of `revision` under `into`; returns `into`."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", revision, "xlm"], check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(into, filter="data")
    return into


def run(tree: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", WORKER, tree], check=True, capture_output=True, text=True).stdout
    seconds, digest = out.split()
    return float(seconds), digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = [extract(rev, os.path.join(tmp, str(i))) for i, rev in enumerate((args.first, args.second))]
        ratios, digests = [], set()
        for _ in range(args.pairs):
            (first, d1), (second, d2) = run(trees[0]), run(trees[1])
            ratios.append(first / second)
            digests |= {d1, d2}
            print(f"{args.first}: {first * 1000:.1f} ms   {args.second}: {second * 1000:.1f} ms", flush=True)
    print(f"speed of {args.second} against {args.first}: {statistics.median(ratios):.3f}x "
          f"(pairs {min(ratios):.3f}-{max(ratios):.3f}); outputs {'identical' if len(digests) == 1 else 'DIFFER'}")


if __name__ == "__main__":
    main()
