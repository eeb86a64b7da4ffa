"""Real-text batched inference: xlm.pipeline vs transformers' documented usage, end to end.

Both sides start from raw sentences of the bundled en/fr/de LibreOffice-help corpus (the first
n/3 segments of each language, in document order: headings, one-liners and paragraphs mixed, as
real text comes) and end with
the hidden states of every sentence (tokenise + forward), on the same weights (emb 512, 6 layers,
8 heads, vocabulary = the bundled test tokenizer's), float32, 2 threads:

- transformers 4.57.6: its XLMTokenizer(padding=True) on batches of 32 in input order, then its
  model (`model(**inputs)` under torch.inference_mode; the eager TF call for TFXLMModel);
- ours: `xlm.pipeline("feature-extraction", model=..., tokenizer=...)` with our tokenizer and model.

Throughput counts real (non-padding) tokens only, the same count on both sides. The two sides run
alternately in one process, and the ratio of medians is printed for the PyTorch pair and for the
Keras-vs-transformers-TF pair (targets: >= 3x each).

    python bench/bench_pipeline.py            # full: 2,000 sentences, 3 alternating rounds
    python bench/bench_pipeline.py --quick    # smoke: 200 sentences, 1 round
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPORA = (
    ROOT / "xlm" / "data" / "lohelp" / "en-fr-de-slice.tsv.gz",
    ROOT.parent / "shared" / "data" / "lohelp" / "en-fr-de.tsv.gz",
)
VOCAB_DIR = ROOT / "xlm" / "data" / "test_tokenizer"
HF_BATCH = 32


def load_sentences(n: int) -> list[str]:
    """The first n/3 segments of the corpus in each language, in file (document) order."""
    path = next((p for p in CORPORA if p.exists()), None)
    if path is None:
        raise FileNotFoundError(f"no corpus found at {', '.join(map(str, CORPORA))}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f]
    per_lang = -(-n // 3)
    sentences = []
    for lang in ("en", "fr", "de"):
        col = header.index(lang)
        sentences += [r[col] for r in rows[:per_lang] if r[col].strip()]
    return sentences[:n]


def time_alternating(sides: dict, rounds: int) -> dict[str, list[float]]:
    """Run the (warmed-up) sides `rounds` times each, alternating; seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 sentences, 1 round")
    parser.add_argument("--sentences", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="our pipeline's batch_size")
    parser.add_argument("--max-tokens", type=int, default=8192, help="our pipeline's max_tokens")
    parser.add_argument("--keras-mode", default="function", choices=("function", "eager"))
    parser.add_argument("--only", choices=("torch", "keras"), default=None, help="run one pair only")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        run(args, stack)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    """Build both sides of each pair on the same weights, check them, time them, print ratios."""
    n = args.sentences or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    import transformers

    import xlm

    print(
        f"xlm.pipeline vs transformers {transformers.__version__}: torch {torch.__version__}, "
        f"tensorflow {tf.__version__}, {args.threads} threads, float32; command: {' '.join(sys.argv)}"
    )
    sentences = load_sentences(n)
    hf_tok = transformers.XLMTokenizer.from_pretrained(str(VOCAB_DIR))
    our_tok = xlm.XLMTokenizer.from_pretrained(str(VOCAB_DIR))
    real_tokens = sum(len(x) for x in hf_tok(sentences)["input_ids"])
    assert real_tokens == sum(len(x) for x in our_tok(sentences)["input_ids"]), "tokenizers disagree"
    hf_padded = sum(
        len(batch) * max(len(x) for x in hf_tok(batch)["input_ids"])
        for batch in (sentences[i : i + HF_BATCH] for i in range(0, n, HF_BATCH))
    )
    print(
        f"{len(sentences)} sentences, {real_tokens} real tokens; transformers' batches of {HF_BATCH} "
        f"hold {hf_padded} positions ({1 - real_tokens / hf_padded:.1%} padding)"
    )

    config = transformers.XLMConfig(
        vocab_size=len(hf_tok), emb_dim=512, n_layers=6, n_heads=8, dropout=0.0, attention_dropout=0.0
    )
    torch.manual_seed(0)
    hf_torch = transformers.XLMModel(config).eval()
    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_pipeline_"))
    hf_torch.save_pretrained(workdir)  # both stacks of both libraries load these weights
    results = {}

    def hf_usage(model, tensors: str):
        def run(texts: list[str] = sentences) -> None:
            for i in range(0, len(texts), HF_BATCH):
                inputs = hf_tok(texts[i : i + HF_BATCH], padding=True, return_tensors=tensors)
                if tensors == "pt":
                    with torch.inference_mode():
                        model(**inputs)
                else:
                    model(**inputs)

        run(sentences[:HF_BATCH])  # warm-up
        return run

    def ours_usage(model, check):
        extractor = xlm.pipeline(
            "feature-extraction",
            model=model,
            tokenizer=our_tok,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            keras_mode=args.keras_mode,
        )
        out = extractor(sentences)  # warm-up (tf.function tracing), checked against transformers
        check(out)
        print(
            f"  ours: {extractor.stats.batches} batches, padding waste {extractor.stats.padding_waste:.1%}, "
            f"{extractor.stats.tokenize_seconds:.2f} s tokenising of {extractor.stats.total_seconds:.2f} s"
        )
        return lambda: extractor(sentences)

    def check_against(reference_fn):
        def check(out) -> None:  # a few sentences against the reference model alone
            worst = max(float(np.abs(reference_fn(sentences[i]) - out[i]).max()) for i in range(0, len(sentences), 97))
            print(f"  ours vs transformers on single sentences: max |diff| {worst:.2e}")

        return check

    pairs = []
    if args.only in (None, "torch"):
        ours_torch = xlm.XLMModel.from_pretrained(workdir).eval()

        def ref_torch(text: str):
            with torch.inference_mode():
                return hf_torch(**hf_tok([text], return_tensors="pt"))[0][0].numpy()

        pairs.append(("PyTorch", ours_usage(ours_torch, check_against(ref_torch)), hf_usage(hf_torch, "pt")))
    if args.only in (None, "keras"):
        hf_tf = transformers.TFXLMModel.from_pretrained(workdir, from_pt=True)
        ours_tf = xlm.TFXLMModel.from_pretrained(workdir)

        def ref_tf(text: str):
            return hf_tf(**hf_tok([text], return_tensors="tf"))[0][0].numpy()

        pairs.append(("Keras", ours_usage(ours_tf, check_against(ref_tf)), hf_usage(hf_tf, "tf")))

    for name, ours, theirs in pairs:
        times = time_alternating({"ours": ours, "transformers": theirs}, rounds)
        t_ours, t_hf = statistics.median(times["ours"]), statistics.median(times["transformers"])
        results[name] = t_hf / t_ours
        print(
            f"{name}: ours {real_tokens / t_ours:,.0f} real tokens/s, transformers {real_tokens / t_hf:,.0f} "
            f"-> {t_hf / t_ours:.2f}x (target >= 3x; runs: ours {['%.2f' % t for t in times['ours']]} s, "
            f"transformers {['%.2f' % t for t in times['transformers']]} s)"
        )
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in results.items()))


if __name__ == "__main__":
    main()
