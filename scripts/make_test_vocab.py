"""Make the bundled corpus slice and the test BPE vocabulary, reproducibly.

    python scripts/make_test_vocab.py                       # vocabulary from the bundled slice
    python scripts/make_test_vocab.py --slice-from ../shared/data/lohelp/en-fr-de.tsv.gz

The slice (xlm/data/lohelp/en-fr-de-slice.tsv.gz) is every 8th row of the LibreOffice help
corpus, header kept, gzipped without a timestamp (byte-identical on every run). The vocabulary
(xlm/data/test_tokenizer/) holds NUM_MERGES merges learned with xlm.bpe on the English, French
and German columns of the slice, saved as an XLMTokenizer directory with lang2id de/en/fr.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm.bpe import count_words, learn_bpe, write_bpe_files  # noqa: E402
from xlm.tokenizer import XLMTokenizer  # noqa: E402

SLICE = os.path.join(ROOT, "xlm", "data", "lohelp", "en-fr-de-slice.tsv.gz")
VOCAB_DIR = os.path.join(ROOT, "xlm", "data", "test_tokenizer")
EVERY = 8
NUM_MERGES = 4000
LANGS = ("de", "en", "fr")  # lang2id numbers languages in sorted order, as the original XLM


def read_rows(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a gzipped TSV without quoting."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


def make_slice(source: str) -> None:
    header, rows = read_rows(source)
    kept = rows[::EVERY]
    text = "".join("\t".join(row) + "\n" for row in [header] + kept)  # no field holds a tab or newline
    os.makedirs(os.path.dirname(SLICE), exist_ok=True)
    tmp = SLICE + ".tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    os.replace(tmp, SLICE)
    print(f"{SLICE}: {len(kept)} of {len(rows)} rows, {os.path.getsize(SLICE)} bytes")


def make_vocab() -> None:
    header, rows = read_rows(SLICE)
    counts = None
    for lang in LANGS:
        column = header.index(lang)
        lang_counts = count_words((row[column] for row in rows), lang=lang)
        counts = lang_counts if counts is None else counts + lang_counts
    start = time.perf_counter()
    vocab, merges = learn_bpe(counts, NUM_MERGES)
    print(f"learned {len(merges)} merges, vocabulary {len(vocab)} in {time.perf_counter() - start:.1f}s")
    write_bpe_files(vocab, merges, VOCAB_DIR)
    lang2id = {lang: i for i, lang in enumerate(LANGS)}
    tokenizer = XLMTokenizer(
        os.path.join(VOCAB_DIR, "vocab.json"),
        os.path.join(VOCAB_DIR, "merges.txt"),
        lang2id=lang2id,
        model_max_length=512,
    )
    tokenizer.save_pretrained(VOCAB_DIR)
    print(f"wrote {VOCAB_DIR}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slice-from", help="re-make the corpus slice from this full en-fr-de.tsv.gz first")
    args = parser.parse_args()
    if args.slice_from:
        make_slice(args.slice_from)
    make_vocab()


if __name__ == "__main__":
    main()
