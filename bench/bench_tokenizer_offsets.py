"""Cost of `return_offsets_mapping=True`: xlm.XLMTokenizer with and without offsets, same process.

    python bench/bench_tokenizer_offsets.py            # 2,000 en/fr/de sentences, 5 rounds

Each round encodes the bundled sentences in padded batches of 32 from a freshly loaded tokenizer
(cold caches), once without and once with offsets, alternating which goes first, and checks that the
ids are identical. Reports sentences/s (median over rounds) and the ratio (offsets time / plain time).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm.tokenizer import XLMTokenizer  # noqa: E402

SLICE = os.path.join(ROOT, "xlm", "data", "lohelp", "en-fr-de-slice.tsv.gz")
VOCAB_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")


def sentences(count: int) -> list[str]:
    with gzip.open(SLICE, "rt", encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    columns = [rows[0].index(lang) for lang in ("en", "fr", "de")]
    return [row[c] for row in rows[1:] for c in columns][:count]


def encode_all(texts: list[str], batch_size: int, offsets: bool) -> tuple[float, list]:
    tokenizer = XLMTokenizer.from_pretrained(VOCAB_DIR)
    start = time.perf_counter()
    ids = [tokenizer(texts[i : i + batch_size], padding=True, return_offsets_mapping=offsets)["input_ids"]
           for i in range(0, len(texts), batch_size)]
    return time.perf_counter() - start, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = sentences(args.sentences)
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_index in range(args.rounds):
        outputs = {}
        for offsets in ((False, True) if round_index % 2 == 0 else (True, False)):
            seconds, outputs[offsets] = encode_all(texts, args.batch_size, offsets)
            times[offsets].append(seconds)
        if outputs[False] != outputs[True]:
            raise SystemExit("ids with offsets differ from ids without")
    plain, offsets = statistics.median(times[False]), statistics.median(times[True])
    print(f"{len(texts)} sentences, batches of {args.batch_size}, {args.rounds} rounds (median)")
    print(f"without offsets: {len(texts) / plain:8.0f} sentences/s")
    print(f"with offsets:    {len(texts) / offsets:8.0f} sentences/s")
    print(f"offsets cost: {offsets / plain:.2f}x the time; ids identical")


if __name__ == "__main__":
    main()
