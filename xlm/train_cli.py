"""`xlm-train`: pretrain or fine-tune an XLM model in PyTorch or Keras from an aligned TSV corpus.

    xlm-train pretrain --framework torch --data corpus.tsv.gz --tokenizer TOKDIR \\
        --objective mlm+tlm --model-size small --steps 2000 --output my-xlm
    xlm-train finetune --framework keras --model my-xlm --data corpus.tsv.gz --steps 300 --output my-xlm-pairs

The corpus is a (gzipped) TSV with the header `page id <lang> <lang> ...`, one aligned segment per
row (the LibreOffice help slice in `xlm/data/lohelp/` is one). `pretrain` trains
XLMWithLMHeadModel on MLM, CLM, TLM or MLM+TLM; `finetune` trains XLMForSequenceClassification on
"is B the translation of A" pairs built from the corpus (half translations, half shuffled
negatives) and reports held-out accuracy. The output directory is a normal `save_pretrained`
directory (config, weights, tokenizer) that either framework loads, plus `training_log.jsonl`
(per-step metrics) and `training_args.json`. It is written atomically: it appears only when the
run succeeds.

Run as `python -m xlm.train_cli` as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Any, Sequence

import numpy as np

from xlm._io import atomic_directory, atomic_write_text
from xlm.config import XLMConfig
from xlm.training_data import (
    OBJECTIVES,
    MaskingConfig,
    TokenIds,
    classification_batches,
    classification_examples,
    collate,
    encode_sentences,
    make_lang2id,
    pretraining_batches,
    read_parallel_corpus,
    unigram_baseline,
)

#: --model-size presets: (emb_dim, n_layers, n_heads).
MODEL_SIZES = {
    "tiny": (32, 2, 4),
    "small": (256, 4, 8),
    "base": (512, 6, 8),
}
LOG_NAME = "training_log.jsonl"
ARGS_NAME = "training_args.json"


class CliError(Exception):
    """An expected failure: printed as one line, without a traceback (unless --debug)."""


# --- arguments ----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--framework", choices=("torch", "keras"), required=True, help="train with PyTorch or Keras (TensorFlow)")
    parser.add_argument("--data", required=True, help="aligned corpus: TSV (or .tsv.gz) with header `page id <lang> ...`")
    parser.add_argument("--languages", default=None, help="comma-separated language columns to use (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N segments")
    parser.add_argument("--output", required=True, help="output directory (a save_pretrained directory)")
    parser.add_argument("--force", action="store_true", help="replace an existing output directory")
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size in rows (default 32)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4 pretrain, 2e-5 finetune)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear warmup steps (default: 10%% of --steps)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm (0: off; default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and masking")
    parser.add_argument("--checkpoint-dir", default=None, help="write resumable checkpoints here (resumes from it)")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="checkpoint every N steps (default: at the end)")
    parser.add_argument("--tensorboard-dir", default=None, help="Keras only: TensorBoard logs")
    parser.add_argument("--bf16", action="store_true", help="PyTorch only: bfloat16 autocast")
    parser.add_argument("--xla", action="store_true",
                        help="Keras only: compile the training step with XLA (faster on CPU for fixed-size "
                             "batches such as MLM / CLM streams; every new batch width compiles again)")
    parser.add_argument("--accumulation-steps", type=int, default=1, help="PyTorch only: gradient accumulation micro-steps")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")


def build_parser() -> argparse.ArgumentParser:
    """The `xlm-train` argument parser."""
    parser = argparse.ArgumentParser(
        prog="xlm-train",
        description="Pretrain (MLM / CLM / TLM) or fine-tune XLM models in PyTorch or Keras.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("pretrain", help="train XLMWithLMHeadModel from scratch on MLM / CLM / TLM")
    _common(pre)
    vocab = pre.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--tokenizer", help="directory with vocab.json + merges.txt (an XLMTokenizer)")
    vocab.add_argument("--learn-bpe", type=int, metavar="N", help="learn N BPE merges on the training text instead")
    pre.add_argument("--objective", choices=OBJECTIVES, default="mlm+tlm", help="training objective (default mlm+tlm)")
    pre.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="small",
                     help="preset: " + ", ".join(f"{k}={v[0]}d/{v[1]}L/{v[2]}H" for k, v in MODEL_SIZES.items()))
    pre.add_argument("--emb-dim", type=int, default=None, help="hidden size (overrides --model-size)")
    pre.add_argument("--n-layers", type=int, default=None, help="layers (overrides --model-size)")
    pre.add_argument("--n-heads", type=int, default=None, help="attention heads (overrides --model-size)")
    pre.add_argument("--dropout", type=float, default=0.1, help="dropout and attention dropout (default 0.1)")
    pre.add_argument("--bptt", type=int, default=256, help="tokens per stream row / longest TLM pair (default 256)")
    pre.add_argument("--mask-probability", type=float, default=0.15, help="MLM: share of tokens predicted (default 0.15)")
    pre.add_argument("--eval-fraction", type=float, default=0.0,
                     help="hold out this share of the pages and report masked-token (CLM: next-token) accuracy "
                          "against the unigram-frequency baseline (default 0: no evaluation)")
    pre.set_defaults(func=pretrain)

    fine = sub.add_parser("finetune", help="fine-tune XLMForSequenceClassification on translation pairs")
    _common(fine)
    fine.add_argument("--model", required=True, help="pretrained model directory (with its tokenizer files)")
    fine.add_argument("--max-length", type=int, default=128, help="longest pair in tokens (default 128)")
    fine.add_argument("--eval-fraction", type=float, default=0.1, help="share of pages held out for accuracy (default 0.1)")
    fine.set_defaults(func=finetune)
    return parser


# --- shared steps -------------------------------------------------------------------------------
def _languages(args: argparse.Namespace) -> list[str] | None:
    return [lang.strip() for lang in args.languages.split(",") if lang.strip()] if args.languages else None


def _read_corpus(args: argparse.Namespace):
    if not os.path.isfile(args.data):
        raise CliError(f"no corpus file at {args.data}")
    corpus = read_parallel_corpus(args.data, _languages(args), limit=args.limit)
    if len(corpus) == 0:
        raise CliError(f"{args.data} holds no segment with text in every language of {corpus.languages}")
    return corpus


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _encode(tokenizer: Any, corpus: Any) -> dict[str, list[np.ndarray]]:
    return {lang: encode_sentences(tokenizer, corpus.texts[lang], lang) for lang in corpus.languages}


def _train(args: argparse.Namespace, model: Any, batches: Any, log_file: str, learning_rate: float) -> Any:
    warmup = args.warmup_steps if args.warmup_steps is not None else args.steps // 10
    common = dict(
        learning_rate=learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=warmup,
        max_grad_norm=args.max_grad_norm or None,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        log_file=log_file,
        progress=not args.quiet,
    )
    if args.framework == "torch":
        if args.tensorboard_dir or args.xla:
            raise CliError("--tensorboard-dir and --xla are for --framework keras")
        from xlm.torch_backend.training import train

        return train(model, batches, args.steps, accumulation_steps=args.accumulation_steps, bf16=args.bf16, **common)
    if args.bf16 or args.accumulation_steps != 1:
        raise CliError("--bf16 and --accumulation-steps are for --framework torch (Keras: set a mixed_bfloat16 policy)")
    from xlm.tf_backend.training import train

    return train(model, batches, args.steps, tensorboard_dir=args.tensorboard_dir, jit_compile=args.xla, **common)


def _seed(framework: str, seed: int) -> None:
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        keras = _keras_on_tensorflow()
        keras.utils.set_random_seed(seed)


def _keras_on_tensorflow() -> Any:
    """Keras, after checking it runs on TensorFlow: the Keras training loop feeds `fit` from tf.data and
    distributes with tf.distribute."""
    from xlm._backend import require_keras

    keras = require_keras()
    if keras.backend.backend() != "tensorflow":
        raise CliError(
            f"--framework keras trains on Keras' TensorFlow backend (its input pipeline is tf.data, its "
            f"multi-device loop tf.distribute); KERAS_BACKEND is {keras.backend.backend()!r}. Set "
            "KERAS_BACKEND=tensorflow, use --framework torch, or train the Keras model yourself with "
            "model.fit on numpy batches (README: 'Keras backends')"
        )
    return keras


def _model_class(framework: str, name: str) -> Any:
    if framework == "torch":
        import xlm.torch_backend as backend
    else:
        import xlm.tf_backend as backend

        name = "TF" + name
    return getattr(backend, name)


def _write_args(directory: str, args: argparse.Namespace, extra: dict[str, Any]) -> None:
    record = {k: v for k, v in vars(args).items() if k not in ("func", "debug")}
    record.update(extra)
    atomic_write_text(os.path.join(directory, ARGS_NAME), json.dumps(record, indent=2, sort_keys=True) + "\n")


# --- pretrain -----------------------------------------------------------------------------------
def _learn_tokenizer(args: argparse.Namespace, corpus: Any, directory: str) -> Any:
    from xlm.bpe import count_words, learn_bpe, write_bpe_files
    from xlm.tokenizer import XLMTokenizer

    counts: Counter = Counter()
    for lang in corpus.languages:
        counts.update(count_words(corpus.texts[lang], lang))
    _say(args, f"learning {args.learn_bpe} BPE merges on {sum(counts.values())} words")
    vocab, merges = learn_bpe(counts, args.learn_bpe)
    write_bpe_files(vocab, merges, directory)
    return XLMTokenizer.from_pretrained(directory)


def pretrain(args: argparse.Namespace) -> int:
    """The `pretrain` subcommand."""
    from xlm.tokenizer import XLMTokenizer

    corpus = _read_corpus(args)
    corpus, held_out = corpus.split(args.eval_fraction, seed=args.seed)
    lang2id = make_lang2id(corpus.languages)
    id2lang = {i: lang for lang, i in lang2id.items()}
    emb_dim, n_layers, n_heads = MODEL_SIZES[args.model_size]
    emb_dim = args.emb_dim or emb_dim
    n_layers = args.n_layers if args.n_layers is not None else n_layers
    n_heads = args.n_heads or n_heads
    with atomic_directory(args.output, force=args.force) as out:
        if args.learn_bpe is not None:
            tokenizer = _learn_tokenizer(args, corpus, out)
        else:
            if not os.path.isdir(args.tokenizer):
                raise CliError(f"--tokenizer {args.tokenizer} is not a directory")
            tokenizer = XLMTokenizer.from_pretrained(args.tokenizer)
        tokenizer = _with_languages(tokenizer, lang2id, id2lang)
        _say(args, f"tokenising {len(corpus)} segments in {', '.join(corpus.languages)}")
        encoded = _encode(tokenizer, corpus)
        try:
            config = XLMConfig(
                vocab_size=len(tokenizer),
                emb_dim=emb_dim,
                n_layers=n_layers,
                n_heads=n_heads,
                dropout=args.dropout,
                attention_dropout=args.dropout,
                causal=args.objective == "clm",
                n_langs=len(lang2id),
                lang2id=lang2id,
                id2lang=id2lang,
                max_position_embeddings=max(512, args.bptt + 1),
                embed_init_std=emb_dim**-0.5,
                bos_index=tokenizer.bos_token_id,
                eos_index=tokenizer.sep_token_id,
                pad_index=tokenizer.pad_token_id,
                unk_index=tokenizer.unk_token_id,
                mask_index=tokenizer.mask_token_id,
                mask_token_id=tokenizer.mask_token_id,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id,
            )
        except ValueError as err:
            raise CliError(f"bad model settings: {err}") from None
        batches = pretraining_batches(
            encoded,
            args.objective,
            lang2id,
            TokenIds.from_config(config),
            batch_size=args.batch_size,
            bptt=args.bptt,
            masking=MaskingConfig(probability=args.mask_probability),
            seed=args.seed,
        )
        _say(args, f"{len(batches)} batches of {args.batch_size} per epoch; training {args.steps} steps with {args.framework}")
        _seed(args.framework, args.seed)
        model = _model_class(args.framework, "XLMWithLMHeadModel")(config)
        result = _train(args, model, batches, os.path.join(out, LOG_NAME), args.lr or 1e-4)
        extra: dict[str, Any] = {"batches_per_epoch": len(batches), "final_step": result.step}
        if len(held_out):
            extra.update(_evaluate_lm(args, model, tokenizer, encoded, held_out, lang2id, TokenIds.from_config(config)))
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        _write_args(out, args, extra)
    _say(args, f"saved to {args.output}")
    return 0


def _evaluate_lm(args: argparse.Namespace, model: Any, tokenizer: Any, encoded: Any, held_out: Any,
                 lang2id: dict[str, int], ids: TokenIds) -> dict[str, Any]:
    """Held-out accuracy of the LM (MLM masks, or CLM next tokens) and of the unigram baseline."""
    objective = "clm" if args.objective == "clm" else "mlm"
    try:
        evaluation = pretraining_batches(
            _encode(tokenizer, held_out), objective, lang2id, ids, batch_size=min(args.batch_size, 8), bptt=args.bptt,
            masking=MaskingConfig(probability=args.mask_probability), seed=args.seed + 1,
        )
    except ValueError as err:
        raise CliError(f"the held-out pages ({len(held_out)} segments) are too few to evaluate: {err}") from None
    eval_batches = [evaluation[i] for i in range(len(evaluation))]
    if args.framework == "torch":
        from xlm.torch_backend.training import evaluate
    else:
        from xlm.tf_backend.training import evaluate
    scores = evaluate(model, eval_batches)
    baseline = unigram_baseline(encoded, eval_batches, ids)
    _say(args, f"held-out {objective} accuracy {scores['accuracy']:.4f} (loss {scores['loss']:.4f}) vs unigram "
               f"baseline {baseline['accuracy']:.4f} on {scores['targets']} targets")
    return {
        "eval_segments": len(held_out),
        "eval_objective": objective,
        "eval_loss": scores["loss"],
        "eval_accuracy": scores["accuracy"],
        "eval_targets": scores["targets"],
        "unigram_baseline_accuracy": baseline["accuracy"],
    }


def _with_languages(tokenizer: Any, lang2id: dict[str, int], id2lang: dict[int, str]) -> Any:
    """The tokenizer with the model's language ids (so that it returns `langs` fitting the model)."""
    tokenizer.lang2id, tokenizer.id2lang = dict(lang2id), dict(id2lang)
    return tokenizer


# --- finetune -----------------------------------------------------------------------------------
def finetune(args: argparse.Namespace) -> int:
    """The `finetune` subcommand."""
    from xlm.tokenizer import XLMTokenizer

    if not os.path.isdir(args.model):
        raise CliError(f"--model {args.model} is not a directory")
    config = XLMConfig.from_pretrained(args.model)
    tokenizer = XLMTokenizer.from_pretrained(args.model)
    corpus = _read_corpus(args)
    lang2id = config.lang2id or make_lang2id(corpus.languages)
    missing = [lang for lang in corpus.languages if lang not in lang2id]
    if missing:
        raise CliError(f"the model has no language id for {missing}; its languages are {sorted(lang2id)}")
    train_corpus, held_out = corpus.split(args.eval_fraction, seed=args.seed)
    if len(train_corpus) < 2:
        raise CliError(f"only {len(train_corpus)} training segments after holding out {args.eval_fraction:.0%} of the pages")
    _say(args, f"tokenising {len(corpus)} segments in {', '.join(corpus.languages)}")
    ids = TokenIds.from_config(config)
    batches = classification_batches(_encode(tokenizer, train_corpus), lang2id, ids, args.batch_size, args.max_length, args.seed)
    _seed(args.framework, args.seed)
    model_class = _model_class(args.framework, "XLMForSequenceClassification")
    head_config = XLMConfig.from_dict(
        {**config.to_dict(), "id2label": {0: "not_translation", 1: "translation"},
         "label2id": {"not_translation": 0, "translation": 1}}
    )
    model = model_class.from_pretrained(args.model, config=head_config)
    with atomic_directory(args.output, force=args.force) as out:
        result = _train(args, model, batches, os.path.join(out, LOG_NAME), args.lr or 2e-5)
        extra: dict[str, Any] = {"batches_per_epoch": len(batches), "final_step": result.step}
        if len(held_out) >= 2:
            examples = classification_examples(_encode(tokenizer, held_out), lang2id, ids, args.max_length, args.seed)
            extra["eval_pairs"] = len(examples)
            extra["eval_accuracy"] = pair_accuracy(args.framework, model, examples, ids)
            _say(args, f"held-out accuracy: {extra['eval_accuracy']:.3f} on {extra['eval_pairs']} pairs")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        _write_args(out, args, extra)
    _say(args, f"saved to {args.output}")
    return 0


def pair_accuracy(framework: str, model: Any, examples: Sequence[dict], ids: TokenIds, group: int = 32) -> float:
    """Accuracy of a sequence classifier on labelled examples (inference mode, `group` per call)."""
    correct = 0
    for start in range(0, len(examples), group):
        batch = collate(examples[start : start + group], ids)
        labels = batch.pop("labels")
        if framework == "torch":
            import torch

            with torch.no_grad():
                logits = model(**{k: torch.as_tensor(v) for k, v in batch.items()}).logits.numpy()
        else:
            logits = np.asarray(model({k: v.astype(np.int32) for k, v in batch.items()}, training=False).logits)
        correct += int((logits.argmax(-1) == labels).sum())
    return correct / max(1, len(examples))


# --- entry point --------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run `xlm-train`; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        print("xlm-train: error: --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.framework == "keras":
            _keras_on_tensorflow()  # before any data is read
        return args.func(args)
    except (CliError, FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        if args.debug:
            raise
        print(f"xlm-train: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
