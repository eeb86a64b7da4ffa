"""Training the Keras XLM models with `model.fit`: pretraining (MLM / CLM / TLM) and fine-tuning.

`train(model, batches, steps=...)` compiles the model with AdamW (warmup + linear decay,
`WarmupLinearDecay`, a serialisable `LearningRateSchedule`; gradient clipping by global norm,
computed correctly for sparse embedding gradients and across replicas, see `AdamW`) and the
token-weighted loss `XLMTrainingLoss`, builds the `tf.data` pipeline from `xlm.training_data`
batches, and runs `model.fit` with `BackupAndRestore` + `RandomStateBackup` (exact resume: weights,
optimiser, step, dropout seeds and data position), `ModelCheckpoint`, `TensorBoard` and per-step
JSON-lines metrics. Each step's global batch is the same whatever the number of replicas, and the loss is the
mean over the global batch's predicted tokens, so one device and N replicas follow the same
trajectory.

Single machine, several devices: create and train the model inside a `MirroredStrategy` scope:

    strategy = tf.distribute.MirroredStrategy()          # all local GPUs (or logical CPUs)
    with strategy.scope():
        model = TFXLMWithLMHeadModel(config)
    train(model, batches, steps=10_000, checkpoint_dir="ckpt")

Several machines: `tf.distribute.MultiWorkerMirroredStrategy` is configured by a `TF_CONFIG`
environment variable on each worker, naming every worker and this one's index, and created before
anything else in TensorFlow:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python pretrain.py   # index 1 on host2

    strategy = tf.distribute.MultiWorkerMirroredStrategy()   # reads TF_CONFIG
    with strategy.scope():
        model = TFXLMWithLMHeadModel(config)

The input side is ready for it: `make_distributed_dataset` gives every worker the same global
batches (`TrainingBatches` is deterministic) and feeds its replicas their row slices, with no
reliance on tf.data auto-sharding; checkpoints would go to a shared directory, logs are written by
the chief only. But Keras 3's `model.fit` itself does not run under this strategy
(keras-team/keras#20585, tensorflow/tensorflow#72388; reproduced here with a plain Sequential model
and two workers on localhost, Keras 3.15 / TensorFlow 2.21: its first-batch build and its metric
reduction both fail), so `train` refuses it with a clear error. Until Keras fixes it, train on
several machines with the PyTorch loop (`torchrun --nnodes N ...`) and convert the result, or use
MirroredStrategy per machine.

Mixed precision: set `keras.mixed_precision.set_global_policy("mixed_bfloat16")` before building the
model; the loss is computed in float32.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from xlm.training_data import (
    IGNORE_INDEX,
    TrainingResult,
    batches_from,
    count_targets,
    shard_batch,
    warmup_linear_decay,
)

__all__ = [
    "WarmupLinearDecay",
    "AdamW",
    "XLMTrainingLoss",
    "StepMetrics",
    "RandomStateBackup",
    "make_dataset",
    "make_distributed_dataset",
    "make_optimizer",
    "train",
    "evaluate",
]

BACKUP_SUBDIR = "backup"


# --- learning-rate schedule ---------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="xlm")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `learning_rate` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    The same factor as the PyTorch loop (`xlm.training_data.warmup_linear_decay`): at optimiser
    step s (0-based) the rate is `learning_rate * (s + 1) / warmup_steps` during warmup and
    `learning_rate * (total_steps - s) / (total_steps - warmup_steps)` after it.
    """

    def __init__(self, learning_rate: float, warmup_steps: int, total_steps: int) -> None:
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps} and {total_steps}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        warmup = (step + 1.0) / max(self.warmup_steps, 1)
        decay = keras.ops.maximum(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))
        factor = keras.ops.where(step < self.warmup_steps, warmup, decay)
        return self.learning_rate * factor

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


# --- optimiser ----------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="xlm")
class AdamW(keras.optimizers.AdamW):
    """Keras AdamW whose clipping sees the true gradient of the whole global batch.

    Two fixes over Keras' own optimiser, both about what its clipping (`global_clipnorm`,
    `clipnorm`, `clipvalue`) is applied to:

    - Sparse embedding gradients (IndexedSlices) are made dense first. Keras and
      `tf.clip_by_global_norm` take the norm of an IndexedSlices over its unaggregated slices, which
      is wrong when a batch repeats a token id (ids [1, 1, 1, 2] on a table of ones: norm 2.83
      instead of 4.47), so they clip by a wrong factor.
    - Under a distribution strategy the replicas' gradients are summed *before* clipping. Keras
      clips each replica's gradient and sums afterwards, so its result depends on the number of
      replicas (it also packs IndexedSlices of different sizes into one collective, which fails
      when replicas see different numbers of ids).

    Weight decay and the Adam update then follow Keras exactly; the result is the single-device
    update with the whole batch, as torch DDP (which clips after its all-reduce) gives.
    """

    def apply(self, grads, trainable_variables=None):
        grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            present = [i for i, g in enumerate(grads) if g is not None]
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            for i, g in zip(present, summed):
                grads[i] = g
        return super().apply(grads, trainable_variables)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars  # `apply` has summed them already


def make_optimizer(
    model: keras.Model,
    learning_rate: float,
    steps: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    max_grad_norm: float | None = 1.0,
) -> AdamW:
    """AdamW with the warmup + linear decay schedule, clipping by global norm, and no weight decay on
    vectors (biases, LayerNorm), as the PyTorch loop does. The model must be built."""
    optimizer = AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, warmup_steps, steps),
        weight_decay=weight_decay,
        beta_1=betas[0],
        beta_2=betas[1],
        epsilon=eps,
        global_clipnorm=max_grad_norm,
    )
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) < 2])
    return optimizer


# --- loss ---------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="xlm")
class XLMTrainingLoss(keras.losses.Loss):
    """Cross entropy over every predicted target of the global batch (labels -100 ignored).

    Token labels (batch, seq) with logits (batch, seq, vocab), or class labels (batch,) with logits
    (batch, classes). The loss is sum(cross entropy) / number of targets in the *global* batch
    (counted across replicas), so replicas holding different numbers of masked tokens still give
    exactly the single-device gradient. Equals the models' own mean loss on one device.
    """

    def __init__(self, name: str = "xlm_training_loss", **kwargs: Any) -> None:
        kwargs.setdefault("reduction", "sum")
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = tf.cast(_logits_of(y_pred), tf.float32)
        labels = tf.cast(y_true, tf.int32)
        valid = tf.not_equal(labels, IGNORE_INDEX)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.where(valid, labels, tf.zeros_like(labels)), logits=logits
        )
        total = tf.reduce_sum(tf.where(valid, cross_entropy, tf.zeros_like(cross_entropy)))
        count = tf.reduce_sum(tf.cast(valid, tf.float32))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        # A scalar loss is not divided by the number of replicas (Keras only scales reductions it
        # performs itself), and the optimiser sums the replicas' gradients: together, the gradient
        # of the global mean. Keras' loss tracker multiplies each replica's value by the number of
        # replicas and averages them, which reports the global mean too.
        return total / tf.maximum(count, 1.0)


def _logits_of(output: Any) -> Any:
    if isinstance(output, Mapping):
        return output["logits"]
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


# --- data ---------------------------------------------------------------------------------------
class _StepCounts(dict):
    """Step -> (tokens, targets) of the global batches the pipeline produced (read by StepMetrics)."""

    def record(self, step: int, batch: Mapping[str, Any]) -> None:
        mask = batch.get("attention_mask")
        tokens = int(np.asarray(mask).sum()) if mask is not None else int(np.asarray(batch["input_ids"]).size)
        self[step] = (tokens, count_targets(batch))


def _arrange(batch: dict[str, Any], labels_in_inputs: bool):
    """`(inputs, labels)`, or the one dict when the labels stay in the inputs."""
    if labels_in_inputs:
        return batch
    labels = batch.pop("labels")
    return batch, labels


def _split(batch: Mapping[str, Any], dtype: np.dtype, labels_in_inputs: bool):
    return _arrange({k: np.asarray(v).astype(dtype, copy=False) for k, v in batch.items()}, labels_in_inputs)


class _GlobalBatches:
    """The global batch of any step, read from a batch source in step order (and from the asked
    step again when a new iterator over the dataset starts elsewhere); keeps the latest batch for
    the replicas that share it."""

    def __init__(self, batches: Iterable[Mapping[str, Any]], steps: int, counts: dict | None) -> None:
        self._batches, self._steps, self._counts = batches, steps, counts
        self._iterator: Any = None
        self._next = -1
        self._latest: tuple[int, Mapping[str, Any]] | None = None

    def __call__(self, step: int) -> Mapping[str, Any]:
        if self._latest is not None and self._latest[0] == step:
            return self._latest[1]
        if step != self._next:
            self._iterator = batches_from(self._batches, step)
        try:
            batch = next(self._iterator)
        except StopIteration:
            raise ValueError(f"the batches ran out at step {step} of {self._steps}: give one batch per step") from None
        self._next = step + 1
        self._latest = (step, batch)
        if self._counts is not None:
            _StepCounts.record(self._counts, step, batch)
        return batch


def _step_dataset(
    first: Mapping[str, Any],
    indices: tf.data.Dataset,
    element: Any,
    dtype: str,
    labels_in_inputs: bool,
) -> tf.data.Dataset:
    """Map each index of `indices` to `element(index)` (a batch of numpy arrays with `first`'s keys).

    A `numpy_function` in a sequential map: `Dataset.from_generator` with an `output_signature`
    runs its generator through an eager `py_function`, which made every non-XLA `model.fit` step
    on CPU about 1 s slower (3.9 s against 2.9 s a step on the benchmark config; BENCHMARKS.md,
    "Pretraining throughput").
    """
    keys = list(first)
    ranks = [np.ndim(first[k]) for k in keys]
    np_dtype = np.dtype(dtype)

    def produce(index: np.ndarray) -> list[np.ndarray]:
        batch = element(int(index))
        if sorted(batch) != sorted(keys):
            raise ValueError(f"batch {int(index)} has the keys {sorted(batch)}, the first batch {sorted(keys)}")
        return [np.asarray(batch[k]).astype(np_dtype, copy=False) for k in keys]

    def to_element(index: tf.Tensor):
        values = tf.numpy_function(produce, [index], [tf.as_dtype(dtype)] * len(keys), stateful=True)
        for value, rank in zip(values, ranks):
            value.set_shape((None,) * rank)
        return _arrange(dict(zip(keys, values)), labels_in_inputs)

    return indices.map(to_element)


def make_dataset(
    batches: Iterable[Mapping[str, Any]],
    steps: int,
    start: int = 0,
    labels_in_inputs: bool = False,
    dtype: str = "int32",
    counts: dict | None = None,
) -> tf.data.Dataset:
    """The global batches of steps start .. steps-1 as a `tf.data.Dataset`.

    Elements are `(inputs, labels)` (inputs: input_ids, attention_mask, langs, position_ids), or one
    dict with `labels` inside when `labels_in_inputs` (for a model trained on its own loss).
    `counts`, when given, receives step -> (tokens, targets) of each batch produced.
    """
    first = next(batches_from(batches, start))
    source = _GlobalBatches(batches, steps, counts)
    dataset = _step_dataset(first, tf.data.Dataset.range(start, steps), source, dtype, labels_in_inputs)
    return dataset.prefetch(2)


def make_distributed_dataset(
    strategy: tf.distribute.Strategy,
    batches: Iterable[Mapping[str, Any]],
    steps: int,
    start: int = 0,
    labels_in_inputs: bool = False,
    dtype: str = "int32",
    counts: dict | None = None,
):
    """`make_dataset` for several replicas: every input pipeline (one per worker) builds the same
    global batches and yields, for each step, the row slices of its own replicas in replica order."""
    first = next(batches_from(batches, start))
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first_replica = context.input_pipeline_id * local
        source = _GlobalBatches(batches, steps, counts if context.input_pipeline_id == 0 else None)

        def replica_slice(index: int) -> Mapping[str, Any]:
            step, replica = divmod(index, local)
            return shard_batch(source(step), first_replica + replica, replicas)

        indices = tf.data.Dataset.range(start * local, steps * local)
        dataset = _step_dataset(first, indices, replica_slice, dtype, labels_in_inputs)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(2 * local)

    return strategy.distribute_datasets_from_function(
        dataset_fn, options=tf.distribute.InputOptions(experimental_fetch_to_device=False)
    )


# --- callbacks ----------------------------------------------------------------------------------
class StepMetrics(keras.callbacks.Callback):
    """Per-step metrics: resets the model's metrics before every step so that each step's logs hold
    that step's loss (not the epoch's running mean), collects them, and appends them as JSON lines
    to `log_file` (step, loss, lr, seconds; targets, tokens and tokens_per_second when `counts`
    maps steps to (tokens, targets), as the pipelines of `train` record them)."""

    def __init__(
        self,
        log_file: str | os.PathLike | None = None,
        schedule: Any = None,
        counts: dict | None = None,
        write: bool = True,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.counts = counts
        self.log_file = os.fspath(log_file) if log_file is not None else None
        self.write = write
        self.metrics: list[dict[str, Any]] = []
        self._began = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.reset_metrics()
        self._began = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._began
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        # The rate of the step just taken (the optimiser's own property already shows the next one).
        lr = float(self.schedule(step - 1)) if self.schedule is not None else float(optimizer.learning_rate)
        record = {"step": step, **{k: float(v) for k, v in (logs or {}).items()}, "lr": lr, "seconds": round(seconds, 6)}
        if self.counts is not None and (step - 1) in self.counts:
            tokens, targets = self.counts.pop(step - 1)
            record.update(targets=targets, tokens=tokens, tokens_per_second=tokens / seconds if seconds > 0 else None)
        if not math.isfinite(record.get("loss", 0.0)):
            self.model.stop_training = True
            raise FloatingPointError(f"loss became {record['loss']} at step {step}")
        self.metrics.append(record)
        if self.log_file is not None and self.write:
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


class RandomStateBackup(keras.callbacks.Callback):
    """Backs up the model's non-trainable state next to `BackupAndRestore`'s backup and restores it.

    `BackupAndRestore` restores the weights and the optimiser, but not the dropout layers' random
    seed state, so a resumed run would draw different dropout masks than the uninterrupted one.
    Put this callback after `BackupAndRestore`: it saves every non-trainable variable (the seed
    state among them) at the end of each epoch and puts them back when training starts.
    """

    FILE = "non_trainable_state.npz"

    def __init__(self, backup_dir: str | os.PathLike, write: bool = True) -> None:
        super().__init__()
        self.path = os.path.join(os.fspath(backup_dir), self.FILE)
        self.write = write

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not os.path.isfile(self.path):
            return
        variables = self.model.non_trainable_variables
        with np.load(self.path) as saved:
            if len(saved.files) != len(variables):
                raise ValueError(f"{self.path} holds {len(saved.files)} states, the model has {len(variables)}")
            for i, variable in enumerate(variables):
                variable.assign(saved[f"v{i}"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.write:
            return
        from xlm._io import atomic_path

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{f"v{i}": np.asarray(v) for i, v in enumerate(self.model.non_trainable_variables)})


def _restart_log(path: str, start: int) -> None:
    """Drop the lines of steps after `start` from a metrics log (a resumed run rewrites them)."""
    kept = []
    if start > 0 and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    if json.loads(line).get("step", 0) <= start:
                        kept.append(line if line.endswith("\n") else line + "\n")
                except json.JSONDecodeError:
                    continue
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(kept)


def _resumed_epoch(backup_dir: str) -> int:
    """The epoch BackupAndRestore will restore (its training_metadata.json), 0 without a backup."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("epoch", 0))


def _is_chief() -> bool:
    """Whether this process writes logs: no TF_CONFIG cluster, the chief, or worker 0 without a chief."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    if not cluster or resolver.task_type in ("chief", None):
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


# --- the loop -----------------------------------------------------------------------------------
def train(
    model: keras.Model,
    batches: Iterable[Mapping[str, Any]],
    steps: int,
    *,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_steps: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    max_grad_norm: float | None = 1.0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
    log_file: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: bool = True,
    loss: str = "global_mean",
    jit_compile: bool | str = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainingResult:
    """Train a Keras XLM model for `steps` optimiser steps on `batches` with `model.fit`.

    Args:
        model: a Keras XLM model (TFXLMWithLMHeadModel, TFXLMForSequenceClassification, ...),
            created inside the distribution strategy's scope when there is one.
        batches: global batches (see `xlm.training_data`), one per step.
        steps: total optimiser steps (a resumed run continues up to it).
        learning_rate, weight_decay, betas, eps: AdamW settings (no decay on vectors).
        warmup_steps: linear warmup from 0; then linear decay to 0 at `steps`.
        max_grad_norm: clip the global gradient norm (over all replicas) to this; None: no clipping.
        checkpoint_dir: `backup/` (BackupAndRestore: weights, optimiser, step; RandomStateBackup:
            dropout seed state) and
            `weights-NNNN.weights.h5` (ModelCheckpoint, one per checkpoint interval) go here.
        checkpoint_every: steps per checkpoint interval (a Keras "epoch"; 0: the whole run); must
            divide `steps`.
        resume: continue from `checkpoint_dir/backup` when it holds a backup.
        log_file: JSON-lines per-step metrics (chief only); a resumed run keeps the lines up to
            its checkpoint.
        tensorboard_dir: TensorBoard logs (per-step scalars; needs the `tensorboard` package).
        progress: Keras progress bar.
        loss: "global_mean" (XLMTrainingLoss on `(inputs, labels)`: exact under distribution) or
            "model" (labels inside the inputs and the model's own loss, per-replica means). On one
            replica the two are the same mean, and "global_mean" runs the model's own loss, whose
            LM head skips the unlabelled positions (a masked-LM step about 1.4× faster).
        jit_compile: compile the train step with XLA.
        callbacks: more Keras callbacks.

    Returns:
        TrainingResult with the metrics of the steps run by this call.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    interval = checkpoint_every or steps
    if checkpoint_every < 0 or steps % interval:
        raise ValueError(f"checkpoint_every={checkpoint_every} must be positive and divide steps={steps}")
    if loss not in ("global_mean", "model"):
        raise ValueError(f"loss must be 'global_mean' or 'model', got {loss!r}")
    if tensorboard_dir is not None:
        from xlm._backend import require

        require("tensorboard")  # TensorFlow no longer installs it; Keras' callback needs it
    strategy = model.distribute_strategy
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise NotImplementedError(
            "Keras 3's model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585: "
            "even a plain Sequential model fails in Keras 3.15 / TensorFlow 2.21): use MirroredStrategy on "
            "each machine, or xlm.torch_backend.training with torchrun for several machines"
        )
    replicas = strategy.num_replicas_in_sync
    labels_in_inputs = loss == "model" or replicas == 1
    chief = _is_chief()

    backup_dir = None
    start_epoch = 0
    if checkpoint_dir is not None:
        checkpoint_dir = os.fspath(checkpoint_dir)
        backup_dir = os.path.join(checkpoint_dir, BACKUP_SUBDIR)
        if resume:
            start_epoch = _resumed_epoch(backup_dir)
        elif os.path.isdir(backup_dir):
            raise FileExistsError(f"{backup_dir} holds a backup; pass resume=True or remove it")
    start = min(start_epoch * interval, steps)
    if start >= steps:
        return TrainingResult(step=steps)

    first = next(batches_from(batches, start))
    with strategy.scope():
        if not model.built:  # BackupAndRestore and the optimiser need the variables
            sample = _split(shard_batch(first, 0, replicas) if replicas > 1 else first, np.dtype("int32"), labels_in_inputs)
            model(sample[0] if isinstance(sample, tuple) else sample, training=False)
        optimizer = make_optimizer(model, learning_rate, steps, warmup_steps, weight_decay, betas, eps, max_grad_norm)
        model.compile(
            optimizer=optimizer,
            loss=None if labels_in_inputs else XLMTrainingLoss(),
            jit_compile=jit_compile,
        )
        # Build the compiled loss and the optimiser now, on a real batch: under a distribution
        # strategy Keras would build them from a replica-averaged (float) copy of the first batch,
        # which token ids cannot go through.
        if not labels_in_inputs:
            x, y = _split(shard_batch(first, 0, replicas) if replicas > 1 else first, np.dtype("int32"), False)
            model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)
        optimizer.build(model.trainable_variables)
    counts = _StepCounts()
    if replicas > 1:
        dataset = make_distributed_dataset(strategy, batches, steps, start, labels_in_inputs, counts=counts)
    else:
        dataset = make_dataset(batches, steps, start, labels_in_inputs, counts=counts)

    if log_file is not None and chief:
        _restart_log(os.fspath(log_file), start)
    step_metrics = StepMetrics(log_file, schedule=WarmupLinearDecay(learning_rate, warmup_steps, steps), counts=counts, write=chief)
    all_callbacks: list[keras.callbacks.Callback] = [step_metrics]
    if backup_dir is not None:
        all_callbacks.append(keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=False))
        all_callbacks.append(RandomStateBackup(backup_dir, write=chief))
        all_callbacks.append(
            keras.callbacks.ModelCheckpoint(os.path.join(checkpoint_dir, "weights-{epoch:04d}.weights.h5"), save_weights_only=True)
        )
    if tensorboard_dir is not None:
        all_callbacks.append(keras.callbacks.TensorBoard(os.fspath(tensorboard_dir), update_freq=1))
    all_callbacks += list(callbacks or [])

    model.fit(
        dataset,
        epochs=steps // interval,
        steps_per_epoch=interval,
        initial_epoch=start_epoch,
        callbacks=all_callbacks,
        verbose=1 if progress else 0,
        shuffle=False,
    )
    return TrainingResult(step=int(optimizer.iterations.numpy()), metrics=step_metrics.metrics)


def evaluate(model: keras.Model, batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Loss and accuracy of `model` (inference mode) over every target of `batches` (a finite
    iterable), weighted by targets: {"loss", "accuracy", "targets"}, as the PyTorch `evaluate`."""
    loss_sum, hits, total = 0.0, 0, 0
    for batch in batches:
        inputs, labels = _split(batch, np.dtype("int32"), False)
        logits = np.asarray(_logits_of(model(inputs, training=False)), dtype=np.float32)
        valid = labels != IGNORE_INDEX
        n = int(valid.sum())
        if n == 0:
            continue
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0]
        loss_sum -= float(picked[valid].sum())
        hits += int((logits.argmax(-1)[valid] == labels[valid]).sum())
        total += n
    return {"loss": loss_sum / max(total, 1), "accuracy": hits / max(total, 1), "targets": total}
