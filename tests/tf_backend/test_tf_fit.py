"""Training the Keras models with model.fit: every head learns (op by op and under XLA), the model's
own loss or a compiled Keras loss, mixed precision, and MirroredStrategy on two logical devices.

The XLA and MirroredStrategy fits run in subprocesses (tf_fit_worker.py, started by conftest.py
when this directory's tests begin) so that they overlap with the other tests."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tf_helpers import fit_config, fit_losses, learnable_dataset  # noqa: E402
from xlm_testing import make_inputs  # noqa: E402
from xlm.tf_backend import TFXLMForSequenceClassification, TFXLMWithLMHeadModel  # noqa: E402
from xlm.weights import ARCHITECTURES  # noqa: E402

HEADS = [a for a in ARCHITECTURES if a != "XLMModel"]


@pytest.mark.parametrize("architecture", HEADS)
def test_every_head_learns_op_by_op(architecture):
    losses = fit_losses(architecture, run_eagerly=True)
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses


def test_fit_loss_is_the_models_own_loss():
    config = fit_config(dropout=0.0, attention_dropout=0.0)
    model = TFXLMWithLMHeadModel(config)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    dataset = learnable_dataset(config, "XLMWithLMHeadModel", batch=16)
    evaluated = model.evaluate(dataset, verbose=0)
    assert abs(evaluated - float(model(next(iter(dataset))).loss)) < 1e-5


def test_compiled_keras_loss_with_y_and_y_moved_into_the_labels():
    config = fit_config()
    inputs = make_inputs(config, batch=16, seq_len=8, seed=3)
    inputs.pop("lengths")
    y = (inputs["input_ids"][:, 0] % 2).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, y)).batch(8)
    keras.utils.set_random_seed(0)
    # a Keras loss on the logits, with a metric
    model = TFXLMForSequenceClassification(config)
    model.compile(
        optimizer=keras.optimizers.Adam(5e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=True,
    )
    history = model.fit(dataset, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] and "accuracy" in history
    batch_x, batch_y = next(iter(dataset))
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(batch_y, model(batch_x).logits)
    assert abs(float(keras_loss) - float(model(batch_x, labels=batch_y).loss)) < 1e-5
    # no compiled loss: y becomes the model's `labels`
    model = TFXLMForSequenceClassification(config)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), run_eagerly=True)
    history = model.fit(dataset, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize("labels_in", ["y", "inputs"])
@pytest.mark.parametrize("run_eagerly", [True, False])
def test_metrics_with_the_models_own_loss(labels_in, run_eagerly):
    """compile(optimizer, metrics=[...]) and no loss (transformers' fine-tuning recipe): the metrics
    see the labels the model's loss read, whether they came as y or in the inputs."""
    config = fit_config(dropout=0.0, attention_dropout=0.0, summary_first_dropout=0.0)
    inputs = make_inputs(config, batch=16, seq_len=8, seed=3)
    inputs.pop("lengths")
    y = (inputs["input_ids"][:, 0] % 2).astype(np.int64)
    data = (inputs, y) if labels_in == "y" else ({**inputs, "labels": y},)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)
    keras.utils.set_random_seed(0)
    model = TFXLMForSequenceClassification(config)
    model.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"], run_eagerly=run_eagerly)
    history = model.fit(dataset, epochs=1, verbose=0).history
    logits = np.asarray(model(inputs).logits)
    expected = float(np.mean(logits.argmax(-1) == y))
    assert abs(history["accuracy"][0] - expected) < 1e-6
    assert abs(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"] - expected) < 1e-6


def test_sample_weight_with_the_models_own_loss_is_a_clear_error():
    """The model's own loss is a mean over its labels: sample or class weights would be dropped silently."""
    config = fit_config()
    inputs = make_inputs(config, batch=4, seq_len=8)
    inputs.pop("lengths")
    y = np.array([0, 1, 0, 1])
    model = TFXLMForSequenceClassification(config)
    model.compile(optimizer="adam", run_eagerly=True)
    with pytest.raises(ValueError, match="sample_weight / class_weight need a compiled Keras loss"):
        model.fit(inputs, y, sample_weight=np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match="sample_weight / class_weight need a compiled Keras loss"):
        model.fit(inputs, y, class_weight={0: 1.0, 1: 0.0}, verbose=0)


def test_missing_labels_is_a_clear_error():
    config = fit_config()
    model = TFXLMForSequenceClassification(config)
    model.compile(optimizer="adam", run_eagerly=True)
    inputs = make_inputs(config, batch=4, seq_len=8)
    inputs.pop("lengths")
    with pytest.raises(ValueError, match="computed no loss"):
        model.fit(tf.data.Dataset.from_tensor_slices(inputs).batch(4), verbose=0)


@pytest.mark.parametrize("policy,run_eagerly", [("mixed_float16", False), ("mixed_bfloat16", True)])
def test_mixed_precision_training(policy, run_eagerly):
    config = fit_config()
    keras.utils.set_random_seed(0)
    model = TFXLMWithLMHeadModel(config, dtype=policy)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), run_eagerly=run_eagerly)  # float16: loss scaling
    losses = model.fit(learnable_dataset(config, "XLMWithLMHeadModel"), epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert all(v.dtype == "float32" for v in model.trainable_variables)


@pytest.mark.parametrize("architecture", HEADS)
def test_every_head_learns_under_xla(architecture, fit_workers):
    losses = fit_workers["xla"].result()[architecture]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses


def test_mirrored_strategy_on_two_devices_equals_one_device(fit_workers):
    result = fit_workers["mirrored"].result()
    assert result["one_replicas"] == 1 and result["two_replicas"] == 2
    np.testing.assert_allclose(result["two"], result["one"], rtol=1e-5, atol=1e-6)
    assert all(np.diff(result["one"]) < 0), result["one"]


def test_resize_under_mirrored_strategy_trains_new_words_as_one_device(fit_workers):
    result = fit_workers["mirrored_resize"].result()
    assert result["one_replicas"] == 1 and result["two_replicas"] == 2
    assert result["one_rows"] == result["two_rows"] == fit_config().vocab_size + 4
    np.testing.assert_allclose(result["two"], result["one"], rtol=1e-5, atol=1e-6)
    assert all(np.diff(result["one"]) < 0), result["one"]
