"""xlm.tf_backend.training: model.fit with falling loss, exact resume with BackupAndRestore,
the schedule, the loss, fine-tuning, and MirroredStrategy on two devices == one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from training_helpers import LANGS, lm_batches, lm_config, synthetic_corpus  # noqa: E402
from xlm.tf_backend import TFXLMForSequenceClassification, TFXLMWithLMHeadModel  # noqa: E402
from xlm.tf_backend.training import AdamW, WarmupLinearDecay, XLMTrainingLoss, make_dataset, train  # noqa: E402
from xlm.training_data import TokenIds, classification_batches, make_lang2id, warmup_linear_decay  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _lm(config, seed=0):
    keras.utils.set_random_seed(seed)
    return TFXLMWithLMHeadModel(config)


class _Interrupt(keras.callbacks.Callback):
    """Stops a run like a crash at the start of Keras epoch `epoch` (a checkpoint interval)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_fit_loss_falls_and_resume_gives_the_uninterrupted_losses(tmp_path):
    """One uninterrupted run (falling loss, per-step log), one run that dies after 2 checkpoint
    intervals, and its resumption (BackupAndRestore: weights, optimiser, step; the data position
    follows; RandomStateBackup: dropout seeds), which must continue exactly as the uninterrupted
    run did."""
    config = lm_config(dropout=0.1, attention_dropout=0.1)
    batches = lm_batches(config)
    settings = dict(learning_rate=3e-3, warmup_steps=4, checkpoint_every=10, progress=False)
    log = tmp_path / "log.jsonl"
    model = _lm(config)
    uninterrupted = train(model, batches, 40, log_file=log, **settings)
    assert model.loss is None  # one replica: the model's own loss (its LM head skips unlabelled rows)
    losses = np.array(uninterrupted.losses)
    assert uninterrupted.step == 40 and len(losses) == 40 and np.isfinite(losses).all()
    assert losses[:10].mean() > np.log(config.vocab_size) - 0.5  # starts near chance
    assert losses[-10:].mean() < losses[:10].mean() - 0.4, losses
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 41))
    np.testing.assert_allclose([m["loss"] for m in lines], losses)
    np.testing.assert_allclose([m["lr"] for m in lines], [3e-3 * warmup_linear_decay(s, 4, 40) for s in range(40)], rtol=1e-6)
    assert all(m["targets"] > 0 and m["tokens"] > 0 for m in lines)

    ckpt = tmp_path / "ckpt"
    log = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        train(_lm(config), batches, 40, checkpoint_dir=ckpt, log_file=log, callbacks=[_Interrupt(2)], **settings)
    assert sorted(os.listdir(ckpt)) == ["backup", "weights-0001.weights.h5", "weights-0002.weights.h5"]
    resumed = train(_lm(config, seed=99), batches, 40, checkpoint_dir=ckpt, log_file=log, **settings)
    assert [m["step"] for m in resumed.metrics] == list(range(21, 41)) and resumed.step == 40
    np.testing.assert_allclose(resumed.losses, losses[20:], rtol=1e-5)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 41))
    # A finished run has nothing left to do.
    assert train(_lm(config), batches, 40, checkpoint_dir=ckpt, **settings).metrics == []


def test_training_loss_equals_the_models_own_loss():
    config = lm_config(dropout=0.0, attention_dropout=0.0)
    batch = lm_batches(config)[0]
    model = _lm(config)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model({**inputs, "labels": batch["labels"]}, training=False)
    ours = XLMTrainingLoss()(batch["labels"], out.logits)
    np.testing.assert_allclose(float(ours), float(out.loss), rtol=1e-6)


def test_tensorboard_logs(tmp_path):
    config = lm_config()
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="tensorboard"):
            train(_lm(config), lm_batches(config), 1, tensorboard_dir=tmp_path / "tb", progress=False)
        pytest.skip("tensorboard is not installed (the error naming it was checked)")
    train(_lm(config), lm_batches(config), 2, tensorboard_dir=tmp_path / "tb", progress=False)
    assert any(name.startswith("events") for _, _, files in os.walk(tmp_path / "tb") for name in files)


def test_schedule_is_serialisable_and_matches_the_torch_factor():
    schedule = WarmupLinearDecay(1e-3, 5, 20)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupLinearDecay) and restored.get_config() == schedule.get_config()
    values = [float(restored(step)) for step in range(22)]
    np.testing.assert_allclose(values, [1e-3 * warmup_linear_decay(s, 5, 20) for s in range(22)], rtol=1e-6, atol=1e-12)


def test_clipping_uses_the_true_norm_of_sparse_embedding_gradients():
    """Keras takes the norm of an IndexedSlices over its unaggregated slices (wrong for repeated
    ids); our AdamW clips exactly as with the dense gradient."""

    def updated(optimizer_class, dense):
        table = keras.Variable(np.ones((5, 2), np.float32))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table.value, [1, 1, 1, 2]))
        grad = tape.gradient(loss, table.value)
        assert isinstance(grad, tf.IndexedSlices)
        optimizer = optimizer_class(learning_rate=0.1, weight_decay=0.0, epsilon=1.0, global_clipnorm=1.0)
        optimizer.apply([tf.convert_to_tensor(grad) if dense else grad], [table])
        return table.numpy()

    expected = updated(AdamW, dense=True)
    np.testing.assert_allclose(updated(AdamW, dense=False), expected, rtol=1e-6)
    assert not np.allclose(updated(keras.optimizers.AdamW, dense=False), expected, rtol=1e-3)


def test_finetune_classifier_fits_a_batch_of_the_pair_task():
    """A fixed batch of the pair task (one-item batch source, cycled) is fitted quickly."""
    config = lm_config(num_labels=2, dropout=0.0, attention_dropout=0.0, summary_first_dropout=0.0)
    batches = classification_batches(synthetic_corpus(100), make_lang2id(LANGS), TokenIds.from_config(config), batch_size=16)
    keras.utils.set_random_seed(0)
    model = TFXLMForSequenceClassification(config)
    # The classifier's own loss (labels inside the inputs), the route transformers' TF models offer.
    result = train(model, [batches[0]], 25, learning_rate=1e-2, warmup_steps=3, loss="model", progress=False)
    losses = np.array(result.losses)
    assert all(m["targets"] == 16 for m in result.metrics)
    assert losses[0] > 0.6 and losses[-5:].mean() < 0.2, losses


def test_dataset_layout():
    config = lm_config()
    batches = lm_batches(config)
    inputs, labels = next(iter(make_dataset(batches, steps=3, start=2)))
    expected = batches[2]
    assert sorted(inputs) == ["attention_mask", "input_ids", "langs", "position_ids"]
    for key in inputs:
        assert inputs[key].dtype == tf.int32
        np.testing.assert_array_equal(inputs[key].numpy(), expected[key])
    np.testing.assert_array_equal(labels.numpy(), expected["labels"])
    assert len(list(make_dataset(batches, steps=3, start=0))) == 3
    merged = next(iter(make_dataset(batches, steps=1, labels_in_inputs=True)))
    assert "labels" in merged


def test_dataset_gives_variable_widths_in_step_order_on_every_iteration():
    """mlm+tlm batches differ in width; a second iterator over the dataset (a Keras epoch, a
    restart) starts again at `start`, and `counts` records every produced step."""
    batches = lm_batches(lm_config())
    widths = {batches[s]["input_ids"].shape[1] for s in range(1, 9)}
    assert len(widths) > 1, widths  # otherwise this test shows nothing about variable widths
    counts = {}
    dataset = make_dataset(batches, steps=9, start=1, counts=counts)
    for _ in range(2):
        produced = list(dataset)
        assert len(produced) == 8
        for step, (inputs, labels) in enumerate(produced, start=1):
            np.testing.assert_array_equal(inputs["input_ids"].numpy(), batches[step]["input_ids"])
            np.testing.assert_array_equal(labels.numpy(), batches[step]["labels"])
    assert sorted(counts) == list(range(1, 9))
    assert counts[3] == (int(batches[3]["attention_mask"].sum()), int((batches[3]["labels"] != -100).sum()))


def test_dataset_says_when_the_batches_run_out():
    class TwoBatches:  # an iterable that is not a sequence: read from its start every time
        def __init__(self, batches):
            self.batches = batches

        def __iter__(self):
            return iter(self.batches)

    batches = lm_batches(lm_config())
    dataset = make_dataset(TwoBatches([batches[0], batches[1]]), steps=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the batches ran out at step 2 of 3"):
        list(dataset)


def test_mirrored_strategy_two_devices_match_one_device(tmp_path):
    """Two logical CPU devices, each with half of every global batch, follow the single-device
    loss trajectory (logical devices must be set before TensorFlow starts: a subprocess)."""
    out = tmp_path / "mirrored.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(
        [HERE, os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE)), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_worker.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == [1, 2]
    one, two = np.array(result["one"]), np.array(result["two"])
    assert len(one) == len(two) == 5 and np.isfinite(one).all()
    assert not np.allclose(one[0], one[-1])  # the trajectory really moves
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
