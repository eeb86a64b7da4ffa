"""Batch-encoding throughput: xlm.XLMTokenizer vs transformers' XLMTokenizer, same process.

    python bench/bench_tokenizer.py                 # 2,000 en/fr/de sentences, 5 rounds
    python bench/bench_tokenizer.py --warm          # keep both tokenizers (and caches) across rounds
    python bench/bench_tokenizer.py --original      # ours: preprocessing="original_xlm" vs the default
    python bench/bench_tokenizer.py --scaling       # ours alone: time per character as inputs grow

Each round encodes the same sentences in padded batches with both tokenizers, alternating which
goes first, and checks that every output (input_ids, token_type_ids, attention_mask) is
identical. By default each round starts from freshly loaded tokenizers, so both pay for their
cold caches (transformers' BPE cache, our per-word cache). Reports sentences/s (median over
rounds) and the ratio, which stays meaningful on a busy machine where absolute numbers do not.

`--scaling` times our tokenizer alone (both preprocessing modes) on inputs of growing size - one
line of real text, many short lines, one word without spaces, only combining marks, only control
characters - and reports microseconds per character: linear time is a flat row (the largest sizes
are 1,000,000 characters, or 100,000 lines).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm.tokenizer import XLMTokenizer  # noqa: E402

SLICE = os.path.join(ROOT, "xlm", "data", "lohelp", "en-fr-de-slice.tsv.gz")
VOCAB_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")


def sentences(count: int) -> list[str]:
    """`count` sentences of the bundled slice, taking en, fr and de of each row in turn."""
    with gzip.open(SLICE, "rt", encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    columns = [rows[0].index(lang) for lang in ("en", "fr", "de")]
    out = [row[c] for row in rows[1:] for c in columns]
    if len(out) < count:
        raise SystemExit(f"the slice has {len(out)} sentences, fewer than {count}")
    return out[:count]


def encode_all(tokenizer, texts: list[str], batch_size: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    outputs = [dict(tokenizer(texts[i : i + batch_size], padding=True)) for i in range(0, len(texts), batch_size)]
    return time.perf_counter() - start, outputs


def original_vs_default(args: argparse.Namespace, texts: list[str]) -> dict:
    """Our tokenizer in the original-XLM order against our default (transformers') order, alternating.

    The per-language pipelines are process-wide and built on first use (the original mode compiles
    Perl's Unicode classes): that one-time cost is measured apart, before the rounds."""
    setup = {}
    for mode in ("transformers", "original_xlm"):
        start = time.perf_counter()
        encode_all(XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode), texts[:30], args.batch_size)
        setup[mode] = time.perf_counter() - start
    print(f"first use (pipelines built): default {setup['transformers']:.2f} s, original_xlm {setup['original_xlm']:.2f} s")
    default = original = None
    default_times, original_times = [], []
    for round_index in range(args.rounds):
        if default is None or not args.warm:
            default = XLMTokenizer.from_pretrained(VOCAB_DIR)
            original = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing="original_xlm")
        if round_index % 2 == 0:
            t_default, _ = encode_all(default, texts, args.batch_size)
            t_original, _ = encode_all(original, texts, args.batch_size)
        else:
            t_original, _ = encode_all(original, texts, args.batch_size)
            t_default, _ = encode_all(default, texts, args.batch_size)
        default_times.append(t_default)
        original_times.append(t_original)
        print(f"round {round_index + 1}: default {len(texts) / t_default:8.0f} sent/s, "
              f"original_xlm {len(texts) / t_original:8.0f} sent/s, ratio {t_default / t_original:.2f}", flush=True)
    default_rate = len(texts) / statistics.median(default_times)
    original_rate = len(texts) / statistics.median(original_times)
    ratios = [d / o for d, o in zip(default_times, original_times)]
    print(f"median: default {default_rate:.0f} sent/s, original_xlm {original_rate:.0f} sent/s, "
          f"original/default = {original_rate / default_rate:.2f}x (lowest round {min(ratios):.2f}x)")
    return {
        "sentences": len(texts), "batch_size": args.batch_size, "rounds": args.rounds,
        "caches": "warm" if args.warm else "cold (fresh tokenizers every round)",
        "default_sentences_per_s": round(default_rate), "original_xlm_sentences_per_s": round(original_rate),
        "ratio_of_medians": round(original_rate / default_rate, 2), "ratio_per_round_min": round(min(ratios), 2),
        "first_use_s": {mode: round(t, 2) for mode, t in setup.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
    }


def scaling_inputs(kind: str, size: int) -> str | list[str]:
    """`size` characters (or lines) of one kind of input; deterministic."""
    import random

    rng = random.Random(0)
    if kind == "one line of text":
        text = " ".join(sentences(2000))
        return (text * (size // len(text) + 1))[:size]
    if kind == "short lines":
        return [s[:40] for s in (sentences(2000) * (size // 2000 + 1))[:size]]
    if kind == "one word, no spaces":
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(size))
    if kind == "combining marks only":
        return "".join(rng.choice("\u0300\u0301\u0302\u0308\u0327\u0331\u20d7") for _ in range(size))
    if kind == "control characters only":
        return "".join(rng.choice("\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\u200b\u200e\ufeff") for _ in range(size))
    raise ValueError(kind)


SCALING = {
    "one line of text": (10_000, 100_000, 1_000_000),
    "short lines": (1_000, 10_000, 100_000),
    "one word, no spaces": (10_000, 100_000, 1_000_000),
    "combining marks only": (10_000, 100_000, 1_000_000),
    "control characters only": (10_000, 100_000, 1_000_000),
}


def scaling(rounds: int, mode: str) -> dict:
    """Microseconds per character (best of `rounds`, a fresh tokenizer each) of every SCALING input."""
    rows = {}
    for kind, sizes in SCALING.items():
        row = {}
        for size in sizes:
            data = scaling_inputs(kind, size)
            chars = sum(map(len, data)) if isinstance(data, list) else len(data)
            best = float("inf")
            for _ in range(rounds):
                tokenizer = XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing=mode)
                tokenizer("warm up: Hello, world!")
                start = time.perf_counter()
                tokenizer(data)
                best = min(best, time.perf_counter() - start)
            label = f"{size:,} lines" if kind == "short lines" else f"{size:,} chars"
            row[label] = {"chars": chars, "seconds": round(best, 4), "us_per_char": round(best / chars * 1e6, 3)}
            print(f"{mode:12s} {kind:24s} {label:>16s}: {best:8.3f} s, {best / chars * 1e6:7.3f} us/char", flush=True)
        per_char = [v["us_per_char"] for v in row.values()]
        row["largest/smallest us_per_char"] = round(per_char[-1] / per_char[0], 2)
        rows[kind] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm", action="store_true", help="reuse the tokenizers (warm caches) across rounds")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--original", action="store_true",
                        help="time our preprocessing='original_xlm' against our default instead of transformers")
    parser.add_argument("--scaling", action="store_true", help="our time per character as inputs grow")
    args = parser.parse_args()
    if args.scaling:
        rounds = max(1, min(args.rounds, 3))
        result = {"rounds": rounds, "scaling": {mode: scaling(rounds, mode) for mode in ("transformers", "original_xlm")},
                  "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=2)
                handle.write("\n")
        return
    if args.original:
        result = original_vs_default(args, sentences(args.sentences))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=2)
                handle.write("\n")
        return

    from transformers import XLMTokenizer as ReferenceTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    texts = sentences(args.sentences)
    ours = theirs = None
    ours_times, theirs_times = [], []
    for round_index in range(args.rounds):
        if ours is None or not args.warm:
            ours = XLMTokenizer.from_pretrained(VOCAB_DIR)
            theirs = ReferenceTokenizer.from_pretrained(VOCAB_DIR)
        if round_index % 2 == 0:
            t_theirs, out_theirs = encode_all(theirs, texts, args.batch_size)
            t_ours, out_ours = encode_all(ours, texts, args.batch_size)
        else:
            t_ours, out_ours = encode_all(ours, texts, args.batch_size)
            t_theirs, out_theirs = encode_all(theirs, texts, args.batch_size)
        if out_ours != out_theirs:
            raise SystemExit("outputs differ from transformers' XLMTokenizer")
        ours_times.append(t_ours)
        theirs_times.append(t_theirs)
        print(
            f"round {round_index + 1}: transformers {len(texts) / t_theirs:8.0f} sent/s, "
            f"xlm {len(texts) / t_ours:8.0f} sent/s, ratio {t_theirs / t_ours:.2f}",
            flush=True,
        )

    ours_rate = len(texts) / statistics.median(ours_times)
    theirs_rate = len(texts) / statistics.median(theirs_times)
    ratios = [t / o for t, o in zip(theirs_times, ours_times)]
    result = {
        "sentences": len(texts),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "caches": "warm" if args.warm else "cold (fresh tokenizers every round)",
        "transformers_sentences_per_s": round(theirs_rate),
        "xlm_sentences_per_s": round(ours_rate),
        "ratio_of_medians": round(ours_rate / theirs_rate, 2),
        "ratio_per_round_min": round(min(ratios), 2),
        "identical_outputs": True,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
    }
    print(
        f"median: transformers {theirs_rate:.0f} sent/s, xlm {ours_rate:.0f} sent/s, "
        f"xlm/transformers = {ours_rate / theirs_rate:.2f}x (lowest round {min(ratios):.2f}x), outputs identical"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
