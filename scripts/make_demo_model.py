"""Train the bundled demo model and package it, with its model card, as xlm/data/default_model/.

    python scripts/make_demo_model.py               # train (under an hour on 2 CPU cores), then package
    python scripts/make_demo_model.py --from DIR    # package the output of an earlier training run

Training is `xlm-train pretrain` with the arguments in TRAIN_ARGS, on the English / French / German
LibreOffice help corpus in ../shared/data/lohelp/ (or --data). Packaging copies the model and
tokenizer files, the training log and arguments, draws the loss curve (loss_curve.png) and writes
the model card (README.md) with the held-out masked-token accuracy against the unigram baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from xlm._io import atomic_directory  # noqa: E402

OUTPUT_DIR = os.path.join(ROOT, "xlm", "data", "default_model")
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "lohelp", "en-fr-de.tsv.gz")
TRAIN_ARGS = [
    "--framework", "torch", "--learn-bpe", "8000", "--objective", "mlm+tlm",
    "--emb-dim", "128", "--n-layers", "4", "--n-heads", "4", "--bptt", "128",
    "--steps", "1600", "--batch-size", "64", "--lr", "1e-3", "--eval-fraction", "0.05", "--seed", "0",
]
COPIED = (
    "config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
    "special_tokens_map.json", "training_args.json", "training_log.jsonl",
)
SIZE_LIMIT = 10 * 2**20


def train(data: str, output: str) -> None:
    """Run the training command (the project's own `xlm-train pretrain`)."""
    command = [sys.executable, "-m", "xlm.train_cli", "pretrain", "--data", data, "--output", output, "--quiet", *TRAIN_ARGS]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def plot_loss(log: list[dict], path: str, window: int = 50) -> None:
    """Per-step training loss and its running mean over `window` steps, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([row["step"] for row in log])
    losses = np.array([row["loss"] for row in log])
    window = max(1, min(window, len(log)))
    mean = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, losses, color="#9bbbd9", linewidth=0.6, label="loss per step (MLM and TLM batches)")
    ax.plot(steps[window - 1 :], mean, color="#1f4e79", linewidth=1.8, label=f"mean of the last {window} steps")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy of masked tokens (nats)")
    ax.set_title("Bundled demo XLM: MLM + TLM pretraining on en / fr / de")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def model_card(config: dict, args: dict, log: list[dict], weights_bytes: int) -> str:
    """The README.md of the packaged model."""
    from xlm.config import XLMConfig
    from xlm.weights import weight_specs

    n_params = sum(
        math.prod(spec.shape)
        for spec in weight_specs(XLMConfig.from_dict(config), "XLMWithLMHeadModel")
        if spec.tied_to is None
    )
    seconds = sum(row["seconds"] for row in log)
    tokens = sum(row["tokens"] for row in log)
    first = sum(row["loss"] for row in log[:50]) / min(50, len(log))
    last = sum(row["loss"] for row in log[-50:]) / min(50, len(log))
    flags = {"framework": "framework", "learn_bpe": "learn-bpe", "objective": "objective", "emb_dim": "emb-dim",
             "n_layers": "n-layers", "n_heads": "n-heads", "bptt": "bptt", "steps": "steps",
             "batch_size": "batch-size", "lr": "lr", "eval_fraction": "eval-fraction", "seed": "seed"}
    command = "xlm-train pretrain --data ../shared/data/lohelp/en-fr-de.tsv.gz --output DIR " + " ".join(
        f"--{flag} {args[key]}" for key, flag in flags.items() if args.get(key) is not None
    )
    return f"""# Bundled demo model: a small XLM trained on English, French and German

A small XLM masked language model, trained by this project with its own pipeline
(`xlm-train pretrain`, PyTorch) on CPU. It's what `python -m conversion` runs with no arguments:
fill-mask in PyTorch and in Keras with the same top tokens, then the conversion and parity check.
It's a demonstration model. At this size it has learned the vocabulary and phrasing of one
documentation corpus, and nothing more general.

| | |
| --- | --- |
| architecture | XLMWithLMHeadModel, {config['n_layers']} layers, hidden {config['emb_dim']}, {config['n_heads']} heads, GELU, learned positions, language embeddings |
| parameters | {n_params:,} (output projection tied to the word embeddings) |
| vocabulary | {config['vocab_size']:,} tokens: {args['learn_bpe']:,} BPE merges learned on the training text (`xlm.bpe`), lowercased and accent-stripped like XLM's `mlm_ende` / `mlm_enfr` |
| languages | {', '.join(f'{lang} = {i}' for lang, i in sorted(config['lang2id'].items(), key=lambda kv: kv[1]))} (`langs` ids) |
| weights | model.safetensors, float32, {weights_bytes / 2**20:.1f} MiB |

## Data

The LibreOffice 7.4 help, aligned English / French / German segments (32,677 of them) from
`../shared/data/lohelp/en-fr-de.tsv.gz`. License: MPL-2.0, the license of the LibreOffice help
content (full text in `xlm/data/lohelp/LICENSE-MPL-2.0`). These weights are derived from that text.
{args['eval_segments']:,} segments (whole help pages, about {args['eval_fraction']:.0%} of them, chosen by a
CRC32 hash of the page name) were held out of training and tokenizer learning, for evaluation.

## Training

```bash
{command}
```

- Objectives: MLM on each language's text, packed into streams of {args['bptt']} tokens, and TLM on aligned
  pairs (en-fr, en-de and fr-de, each pair once, in both orders), positions restarted for the
  second sentence. 15 % of tokens predicted: 80 % masked, 10 % random, 10 % unchanged.
- AdamW with learning rate {args['lr'] or 1e-4:g}, linear warmup over the first 10 % of steps and linear decay,
  weight decay {args['weight_decay']}, gradient clipping at {args['max_grad_norm']}, dropout {args['dropout']}.
- {len(log):,} steps of {args['batch_size']} rows ({tokens / 1e6:.1f} M real tokens, {args['batches_per_epoch']:,} batches per epoch) in
  {seconds / 60:.0f} minutes on 2 CPU cores. The mean loss went from {first:.2f} over the first 50 steps to
  {last:.2f} over the last 50.

![loss curve](loss_curve.png)

`training_log.jsonl` has the loss, learning rate, gradient norm and throughput of every step, and
`training_args.json` has every argument and the evaluation below. `python scripts/make_demo_model.py`
retrains the model and rewrites this directory. On a different machine the result will be close but
not byte-identical, because threaded float sums differ.

## Evaluation

The held-out pages are masked the same way as in training (seeded), giving {args['eval_targets']:,} predicted tokens:

| predictor | masked-token accuracy |
| --- | --- |
| this model | **{args['eval_accuracy']:.1%}** (loss {args['eval_loss']:.3f}) |
| unigram baseline: always the most frequent training token | {args['unigram_baseline_accuracy']:.1%} |

The baseline is the best that a predictor without context can do on the training-token frequencies.

## Limitations

An hour of CPU is less than one epoch ({len(log):,} steps of a {args['batches_per_epoch']:,}-batch epoch), and at that
point the model is early in training. It clearly beats the baseline, but for a masked content word
its top guesses are still mostly frequent function words and punctuation of the right language, as
`python -m conversion` shows. Use it to try the API, the pipeline and the cross-framework parity,
not as a language model. Retrain with more steps (`--steps`) for a better one.
"""


def package(source: str, output: str = OUTPUT_DIR) -> None:
    """Write `output` from a training output directory: model, tokenizer, log, curve and card."""
    missing = [name for name in COPIED if not os.path.isfile(os.path.join(source, name))]
    if missing:
        raise SystemExit(f"{source} lacks {', '.join(missing)}: is it an `xlm-train pretrain` output?")
    with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with open(os.path.join(source, "training_args.json"), encoding="utf-8") as f:
        args = json.load(f)
    with open(os.path.join(source, "training_log.jsonl"), encoding="utf-8") as f:
        log = [json.loads(line) for line in f if line.strip()]
    if "eval_accuracy" not in args:
        raise SystemExit(f"{source}/training_args.json has no evaluation: train with --eval-fraction")
    with atomic_directory(output, force=True) as out:
        for name in COPIED:
            shutil.copyfile(os.path.join(source, name), os.path.join(out, name))
        plot_loss(log, os.path.join(out, "loss_curve.png"))
        card = model_card(config, args, log, os.path.getsize(os.path.join(source, "model.safetensors")))
        with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
            f.write(card)
        size = sum(os.path.getsize(os.path.join(out, name)) for name in os.listdir(out))
        if size > SIZE_LIMIT:
            raise SystemExit(f"the packaged model is {size / 2**20:.1f} MiB, over the {SIZE_LIMIT / 2**20:.0f} MiB limit")
    print(f"wrote {output} ({size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", metavar="DIR", help="package this training output instead of training")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the aligned corpus (default: ../shared/data/lohelp)")
    parser.add_argument("--output", default=OUTPUT_DIR, help="where to write the package (default: the bundled model)")
    options = parser.parse_args()
    if options.source:
        package(options.source, options.output)
        return
    with tempfile.TemporaryDirectory(prefix="xlm-demo-") as tmp:
        trained = os.path.join(tmp, "trained")
        train(options.data, trained)
        package(trained, options.output)


if __name__ == "__main__":
    main()
