"""The new pipeline tasks end to end: xlm.pipeline vs transformers' pipeline on the same weights.

For each task both sides start from raw segments of the bundled en/fr/de corpus (the first n/3 of
each language, in document order) and end with the task's results: transformers 4.57.6's
`pipeline(task, model=dir, batch_size=8)` (its pipeline-batching docs' size; PyTorch, slow XLM
tokenizer) against `xlm.pipeline(task, model=dir)` (PyTorch stack, defaults). Weights: emb 512,
6 layers, 8 heads, vocabulary = the bundled test tokenizer's, float32, 2 threads. Inputs per task:
text- and token-classification: the sentences; zero-shot: each sentence with 3 candidate labels;
question-answering: a question (the first 4 words of the next sentence) about each sentence of 8
words or more, with `<s>` as the tokenizer's cls token (see the code);
text-generation: the first 4 words of each sentence, 4 new tokens (greedy; a masked-LM model, so
both libraries generate the same tokens at an appended mask). Results are checked equal before
timing; rounds alternate transformers and ours; the ratio of medians is printed.

    python bench/bench_pipeline_tasks.py                 # 2,000 sentences, 2 alternating rounds
    python bench/bench_pipeline_tasks.py --quick         # smoke: 100 sentences, 1 round
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import VOCAB_DIR, load_sentences  # noqa: E402

TASKS = ("text-classification", "token-classification", "question-answering", "zero-shot-classification", "text-generation")
HEADS = {
    "text-classification": "XLMForSequenceClassification",
    "zero-shot-classification": "XLMForSequenceClassification",
    "token-classification": "XLMForTokenClassification",
    "question-answering": "XLMForQuestionAnsweringSimple",
    "text-generation": "XLMWithLMHeadModel",
}
HF_BATCH = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sentences", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()
    n = args.sentences or (100 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 2)

    import numpy as np
    import torch
    import transformers

    import xlm

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    print(f"xlm.pipeline vs transformers {transformers.__version__} pipeline (batch_size={HF_BATCH}), torch "
          f"{torch.__version__}, {args.threads} threads, float32; load {os.getloadavg()[0]:.2f}; command: {' '.join(sys.argv)}")
    sentences = load_sentences(n)
    short = [s for s in sentences if len(s.split()) >= 2]
    labels = ["dialog", "macros", "printing"]
    hf_tok = transformers.XLMTokenizer.from_pretrained(str(VOCAB_DIR))
    work = tempfile.mkdtemp(prefix="bench_tasks_")
    ratios = {}
    for task in args.tasks:
        config = transformers.XLMConfig(vocab_size=len(hf_tok), emb_dim=512, n_layers=6, n_heads=8, dropout=0.0,
                                        attention_dropout=0.0, num_labels=3 if task != "question-answering" else 2,
                                        id2label={0: "contradiction", 1: "neutral", 2: "entailment"} if task == "zero-shot-classification" else None,
                                        label2id={"contradiction": 0, "neutral": 1, "entailment": 2} if task == "zero-shot-classification" else None)
        if config.id2label is None or task != "zero-shot-classification":
            config = transformers.XLMConfig(**{k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")})
        torch.manual_seed(0)
        directory = os.path.join(work, task)
        getattr(transformers, HEADS[task])(config).eval().save_pretrained(directory)
        if task == "question-answering":
            # transformers' slow QA path fails (KeyError) when XLM's cls token, the </s> after the
            # question, lands among its candidates; with <s> (position 0, zeroed there) it cannot
            transformers.XLMTokenizer.from_pretrained(str(VOCAB_DIR), cls_token="<s>").save_pretrained(directory)
        else:
            hf_tok.save_pretrained(directory)
        theirs = transformers.pipeline(task, model=directory, framework="pt", batch_size=HF_BATCH)
        ours = xlm.pipeline(task, model=directory)
        if task == "question-answering":
            contexts = [c for c in sentences if len(c.split()) >= 8]  # room for its 12 candidate spans
            qs = [" ".join(sentences[(i + 1) % len(sentences)].split()[:4]) + "?" for i in range(len(sentences))]
            qs = qs[: len(contexts)]
            run_hf = lambda: theirs(question=qs, context=contexts)  # noqa: E731
            run_ours = lambda: ours(question=qs, context=contexts)  # noqa: E731
            count = len(contexts)
        elif task == "zero-shot-classification":
            run_hf = lambda: theirs(sentences, candidate_labels=labels)  # noqa: E731
            run_ours = lambda: ours(sentences, candidate_labels=labels)  # noqa: E731
            count = len(sentences)
        elif task == "text-generation":
            prompts = [" ".join(s.split()[:4]) for s in short]
            run_hf = lambda: theirs(prompts, max_new_tokens=4, do_sample=False)  # noqa: E731
            run_ours = lambda: ours(prompts, max_new_tokens=4, do_sample=False)  # noqa: E731
            count = len(prompts)
        else:
            run_hf = lambda: theirs(sentences)  # noqa: E731
            run_ours = lambda: ours(sentences)  # noqa: E731
            count = len(sentences)
        got, want = run_ours(), run_hf()  # warm-up, and the check
        same = _same(got, want)
        times = {"transformers": [], "ours": []}
        for _ in range(rounds):
            for name, fn in (("transformers", run_hf), ("ours", run_ours)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        t_hf, t_ours = statistics.median(times["transformers"]), statistics.median(times["ours"])
        ratios[task] = t_hf / t_ours
        print(f"{task}: {count} inputs, results equal: {same}; ours {count / t_ours:,.0f}/s, transformers "
              f"{count / t_hf:,.0f}/s -> {t_hf / t_ours:.2f}x (runs: ours {['%.2f' % t for t in times['ours']]} s, "
              f"transformers {['%.2f' % t for t in times['transformers']]} s; ours {ours.stats.batches} batches, "
              f"padding {ours.stats.padding_waste:.1%})", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.2f}; ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


def _same(ours, theirs, tol: float = 1e-4) -> str:
    """'yes', or where the first difference is (QA ends differ by design: see the pipeline)."""
    import numpy as np

    def walk(a, b, path):
        if isinstance(b, dict):
            for k in b:
                if k == "end" or b[k] is None:  # QA ends differ by design; NER spans transformers lacks
                    continue
                r = walk(a.get(k), b[k], f"{path}.{k}")
                if r:
                    return r
        elif isinstance(b, (list, tuple)):
            if len(a) != len(b):
                return f"{path}: length {len(a)} vs {len(b)}"
            for i, (x, y) in enumerate(zip(a, b)):
                r = walk(x, y, f"{path}[{i}]")
                if r:
                    return r
        elif isinstance(b, (float, np.floating)):
            if abs(float(a) - float(b)) > tol:
                return f"{path}: {a} vs {b}"
        elif a != b:
            return f"{path}: {a!r} vs {b!r}"
        return ""

    where = walk(ours, theirs, "result")
    return "yes" if not where else "NO, " + where


if __name__ == "__main__":
    main()
