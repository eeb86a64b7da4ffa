"""Training loop for the PyTorch XLM models: pretraining (MLM / CLM / TLM) and fine-tuning.

`train(model, batches, steps=...)` runs AdamW with linear warmup and linear decay, gradient
accumulation, gradient-norm clipping, optional bfloat16 autocast, per-step metrics (JSON lines) and a
tqdm bar, and checkpoints that resume exactly: model, optimiser, scheduler, RNG and data position.

`batches` yields one *global* batch (a dict of numpy arrays or tensors, with `labels`) per
optimiser step; `xlm.training_data.TrainingBatches` is the usual source. Each step's batch is split
into near-equal row slices over the data-parallel ranks and then over the accumulation micro-steps,
and every slice's loss is weighted by its share of the step's predicted tokens, so the update is the
gradient of the loss over the whole global batch however it is split. An indexable source
(`batches[step]`) lets a resumed run jump straight to its step; any other iterable is re-iterated
from its start and the consumed batches are skipped.

Distributed data parallel: launch the same script with
`torchrun --nproc_per_node N script.py` (gloo on CPU, nccl on GPU). `train` initialises the process
group from the torchrun environment when it is not initialised yet, wraps the model in
DistributedDataParallel, and lets rank 0 write checkpoints, logs and the progress bar. The loss
trajectory equals that of one process with the same global batch (up to float rounding in the
gradient all-reduce).

Large models: when a replica per device no longer fits, shard parameters, gradients and optimiser
state with FSDP2 instead of replicating them, before calling `train`, and skip its DDP wrapping:

    from torch.distributed.fsdp import fully_shard

    for attention, ffn in zip(model.transformer.attentions, model.transformer.ffns):
        fully_shard(attention)
        fully_shard(ffn)
    fully_shard(model)  # the root group holds the (tied) embeddings, layer norms and heads
    train(model, batches, steps, wrap_ddp=False)

The loss weighting stays exact (FSDP averages gradients over ranks as DDP does) and
`clip_grad_norm_` handles sharded parameters. Checkpoints of sharded models need
`torch.distributed.checkpoint`; this module's checkpoints (`save_pretrained` + one state file)
assume that every rank holds the full model, so leave `checkpoint_dir` unset there.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from xlm._io import atomic_directory
from xlm.torch_backend.heads import XLMWithLMHeadModel
from xlm.training_data import TrainingResult, batches_from, count_targets, shard_batch, warmup_linear_decay

__all__ = ["TrainingResult", "train", "evaluate", "linear_schedule", "make_optimizer", "latest_checkpoint", "load_checkpoint"]

TRAINER_STATE = "trainer_state.pt"
CHECKPOINT_PREFIX = "step-"


# --- optimiser and schedule ---------------------------------------------------------------------
def linear_schedule(warmup_steps: int, total_steps: int):
    """`LambdaLR` factor: linear warmup, then linear decay to 0 at `total_steps` (see
    `xlm.training_data.warmup_linear_decay`)."""
    return functools.partial(warmup_linear_decay, warmup_steps=warmup_steps, total_steps=total_steps)


def make_optimizer(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm or embeddings' norms)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, foreach=True)


# --- distributed helpers ------------------------------------------------------------------------
def _init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group from torchrun's environment if needed."""
    if not torch.distributed.is_available():
        return 0, 1
    if not torch.distributed.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


# --- checkpoints --------------------------------------------------------------------------------
def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The `step-N` directory with the highest N under `checkpoint_dir`, or None."""
    best, best_step = None, -1
    for path in glob.glob(os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_PREFIX + "*")):
        match = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", os.path.basename(path))
        if match and os.path.isfile(os.path.join(path, TRAINER_STATE)) and int(match.group(1)) > best_step:
            best, best_step = path, int(match.group(1))
    return best


def _save_checkpoint(
    path: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
) -> None:
    with atomic_directory(path, force=True) as tmp:
        model.save_pretrained(tmp)
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, os.path.join(tmp, TRAINER_STATE))


def _load_model_weights(model: torch.nn.Module, path: str) -> None:
    from safetensors.torch import load_file

    weights_file = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights_file):
        raise FileNotFoundError(f"checkpoint {path} has no model.safetensors")
    state = load_file(weights_file)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # save_pretrained leaves out tied weights (the LM output projection shares the embeddings).
    own = model.state_dict(keep_vars=True)
    loaded = {id(own[k]) for k in state if k in own}
    missing = [k for k in missing if id(own[k]) not in loaded]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}")


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> int:
    """Restore a `train` checkpoint into model (and optimiser, scheduler, torch RNG); returns its step."""
    path = os.fspath(path)
    _load_model_weights(model, path)
    state = torch.load(os.path.join(path, TRAINER_STATE), weights_only=True, map_location="cpu")
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def _prune_checkpoints(checkpoint_dir: str, keep: int) -> None:
    paths = []
    for path in glob.glob(os.path.join(checkpoint_dir, CHECKPOINT_PREFIX + "*")):
        match = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", os.path.basename(path))
        if match:
            paths.append((int(match.group(1)), path))
    for _, path in sorted(paths)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


# --- data ---------------------------------------------------------------------------------------
def _to_tensors(batch: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v).to(device) for k, v in batch.items()}


# --- the loop -----------------------------------------------------------------------------------
def train(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    steps: int,
    *,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_steps: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = 1.0,
    bf16: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 2,
    resume: bool = True,
    log_file: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    wrap_ddp: bool = True,
) -> TrainingResult:
    """Train `model` for `steps` optimiser steps on `batches` (one global batch per step).

    Args:
        model: an XLM PyTorch model whose forward takes the batch's keys and returns `.loss`.
        batches: global batches (dicts with `labels`); see the module docstring.
        steps: total optimiser steps of the run (a resumed run continues up to it).
        learning_rate, weight_decay, betas, eps: AdamW settings (no decay on vectors).
        warmup_steps: linear warmup from 0; then linear decay to 0 at `steps`.
        accumulation_steps: micro-steps per optimiser step (the global batch is split into them).
        max_grad_norm: clip the global gradient norm to this (None: no clipping).
        bf16: run forward and loss under bfloat16 autocast (weights and optimiser stay float32).
        checkpoint_dir: where `step-N` checkpoints go (each a `save_pretrained` directory plus
            `trainer_state.pt`); None writes none.
        checkpoint_every: checkpoint every N steps (0: only at the end), always at the last step.
        keep_checkpoints: how many recent checkpoints to keep (0: all).
        resume: continue from the latest checkpoint in `checkpoint_dir` when there is one.
        log_file: JSON-lines file of per-step metrics (step, loss, lr, grad_norm, targets, seconds,
            tokens_per_second); a resumed run keeps the lines up to its checkpoint.
        progress: show a tqdm progress bar (rank 0 only).
        device: where to train (default: CUDA when available, else CPU).
        wrap_ddp: wrap the model in DistributedDataParallel when more than one process runs; False
            only for a model that synchronises its gradients itself (FSDP).

    Returns:
        TrainingResult with the metrics of the steps run by this call. The model is left in eval
        mode.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be at least 1, got {accumulation_steps}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be non-negative, got {checkpoint_every}")
    rank, world = _init_distributed()
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    model.to(device)
    optimizer = make_optimizer(model, learning_rate, weight_decay, betas, eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup_steps, steps))

    start = 0
    checkpoint_dir = os.fspath(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint_dir is not None and resume:
        last = latest_checkpoint(checkpoint_dir)
        if last is not None:
            start = load_checkpoint(last, model, optimizer, scheduler)
    history = _restart_log(log_file, start) if rank == 0 and log_file is not None else None

    module = model
    if world > 1 and wrap_ddp:
        module = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )

    # the loop reads only the loss: the LM head then projects the labelled positions alone
    loss_only = {"return_logits": False} if isinstance(model, XLMWithLMHeadModel) else {}
    result = TrainingResult(step=start)
    bar = None
    if progress and rank == 0 and start < steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    data = batches_from(batches, start)
    try:
        for step in range(start, steps):
            began = time.perf_counter()
            try:
                batch = next(data)
            except StopIteration:
                raise ValueError(f"batches ran out after {step} steps, before steps={steps}") from None
            if "labels" not in batch:
                raise ValueError(f"batch of step {step} has no 'labels' (keys: {sorted(batch)})")
            total = count_targets({"labels": np.asarray(batch["labels"])})
            local = shard_batch(batch, rank, world) if world > 1 else batch
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            tokens = torch.zeros((), dtype=torch.float64, device=device)
            for micro_index in range(accumulation_steps):
                micro = shard_batch(local, micro_index, accumulation_steps) if accumulation_steps > 1 else local
                n = count_targets({"labels": np.asarray(micro["labels"])})
                inputs = _to_tensors(micro, device)
                last_micro = micro_index == accumulation_steps - 1
                sync = contextlib.nullcontext() if last_micro or module is model else module.no_sync()
                with sync:
                    with autocast:
                        output = module(**inputs, **loss_only)
                    if n > 0:
                        # DDP averages gradients over ranks, hence the factor `world`.
                        weighted = output.loss.float() * (n * world / max(total, 1))
                        loss_sum += output.loss.detach().double() * n
                    else:  # keep every parameter in the graph so DDP's all-reduce still matches
                        weighted = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
                    weighted.backward()
                tokens += float(inputs["attention_mask"].sum()) if "attention_mask" in inputs else float(inputs["input_ids"].numel())
            if world > 1:
                stats = torch.stack([loss_sum, tokens])
                torch.distributed.all_reduce(stats)
                loss_sum, tokens = stats[0], stats[1]
            if max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
            else:
                grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss = float(loss_sum) / max(total, 1)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step + 1}")
            seconds = time.perf_counter() - began
            metrics = {
                "step": step + 1,
                "loss": loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "targets": total,
                "tokens": int(tokens),
                "seconds": round(seconds, 6),
                "tokens_per_second": float(tokens) / seconds if seconds > 0 else None,
            }
            result.metrics.append(metrics)
            result.step = step + 1
            if rank == 0:
                if history is not None:
                    history.write(json.dumps(metrics) + "\n")
                    history.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            done = step + 1 == steps
            if checkpoint_dir is not None and (done or (checkpoint_every and (step + 1) % checkpoint_every == 0)):
                if rank == 0:
                    _save_checkpoint(os.path.join(checkpoint_dir, f"{CHECKPOINT_PREFIX}{step + 1}"), model, optimizer, scheduler, step + 1)
                    _prune_checkpoints(checkpoint_dir, keep_checkpoints)
                _barrier(world)
    finally:
        if bar is not None:
            bar.close()
        if history is not None:
            history.close()
    model.eval()
    return result


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[Mapping[str, Any]], device: str | torch.device | None = None) -> dict[str, float]:
    """Loss and accuracy of `model` (eval mode) over every target of `batches` (a finite iterable,
    e.g. `[eval_batches[i] for i in range(len(eval_batches))]`), weighted by targets:
    {"loss", "accuracy", "targets"}. Token labels give masked-token (or next-token) accuracy."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum, hits, total = 0.0, 0, 0
    for batch in batches:
        inputs = _to_tensors(batch, device)
        output = model(**inputs)
        n = count_targets({"labels": np.asarray(batch["labels"])})
        if n == 0:
            continue
        labels = inputs["labels"]
        predictions = output.logits.argmax(-1)
        valid = labels != -100
        hits += int((predictions[valid] == labels[valid]).sum())
        loss_sum += float(output.loss) * n
        total += n
    model.train(was_training)
    return {"loss": loss_sum / max(total, 1), "accuracy": hits / max(total, 1), "targets": total}


def _restart_log(log_file: str | os.PathLike, start: int):
    """Open the metrics log for appending, first dropping the lines of steps after `start`."""
    path = os.fspath(log_file)
    kept = []
    if start > 0 and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line).get("step", 0) <= start:
                        kept.append(line if line.endswith("\n") else line + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(kept)
    return open(path, "a", encoding="utf-8")
