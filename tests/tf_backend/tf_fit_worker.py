"""Fits run by test_tf_fit.py in subprocesses, in parallel with the rest of that file:

    python tf_fit_worker.py xla        # every head, model.fit with jit_compile=True
    python tf_fit_worker.py mirrored   # one vs two logical CPU devices under MirroredStrategy
    python tf_fit_worker.py mirrored_resize   # the same after resize_token_embeddings

prints one JSON line of loss trajectories. (XLA compiles each head's train step for seconds; logical
devices must be configured before TensorFlow initialises: both want a process of their own.)"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]


def xla() -> dict:
    from tf_helpers import fit_losses
    from xlm.weights import ARCHITECTURES

    # no dropout here: its random ops about double XLA's compile time (the op-by-op fits train with it)
    return {a: fit_losses(a, jit_compile=True, dropout=0.0) for a in ARCHITECTURES if a != "XLMModel"}


def _two_logical_cpus():
    """TensorFlow, with the CPU split into two logical devices (before TensorFlow initialises)."""
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    return tf


def mirrored() -> dict:
    tf = _two_logical_cpus()
    import keras
    import numpy as np

    from tf_helpers import fit_config
    from xlm_testing import make_inputs
    from xlm.tf_backend import TFXLMForSequenceClassification

    config = fit_config(dropout=0.0, attention_dropout=0.0, summary_first_dropout=0.0)
    inputs = make_inputs(config, batch=16, seq_len=8, seed=3)
    inputs.pop("lengths")
    labels = (inputs["input_ids"][:, 0] % 2).astype(np.int64)
    keras.utils.set_random_seed(0)
    state = TFXLMForSequenceClassification(config).state_dict()
    result = {}
    for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            model = TFXLMForSequenceClassification(config)
            model.load_state_dict(state)
            # the model's own loss; y becomes `labels`. At 0.1 the loss of an unlucky initialisation
            # could rise over three epochs; at 0.05 it falls every epoch for every seed tried (0-7).
            model.compile(optimizer=keras.optimizers.SGD(0.05))
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(8)  # global batches of 8
        result[name] = model.fit(dataset, epochs=5, verbose=0).history["loss"]
        result[name + "_replicas"] = strategy.num_replicas_in_sync
    return result


def mirrored_resize() -> dict:
    """resize_token_embeddings inside MirroredStrategy's scope, then fit with ids of the new words. (A process of
    its own: a second two-device strategy in one process fails in TensorFlow's collectives, tensorflow#62790.)"""
    tf = _two_logical_cpus()
    import keras
    import numpy as np

    from tf_helpers import fit_config
    from xlm_testing import make_inputs
    from xlm.config import XLMConfig
    from xlm.tf_backend import TFXLMWithLMHeadModel

    config = fit_config(dropout=0.0, attention_dropout=0.0)
    inputs = make_inputs(config, batch=16, seq_len=8, seed=3)
    inputs.pop("lengths")
    inputs["input_ids"][:, 1] = config.vocab_size + np.arange(16) % 4
    inputs["labels"] = inputs["input_ids"]
    keras.utils.set_random_seed(0)
    state = TFXLMWithLMHeadModel(XLMConfig.from_dict(config.to_dict())).state_dict()
    result = {}
    for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            model = TFXLMWithLMHeadModel(XLMConfig.from_dict(config.to_dict()))
            model.load_state_dict(state)
            keras.utils.set_random_seed(1)  # the same new rows on both
            model.resize_token_embeddings(config.vocab_size + 4)
            model.compile(optimizer=keras.optimizers.SGD(0.05))
        dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(8)
        result[name] = model.fit(dataset, epochs=3, verbose=0).history["loss"]
        result[name + "_rows"] = int(model.get_input_embeddings().weight.shape[0])
        result[name + "_replicas"] = strategy.num_replicas_in_sync
    return result


if __name__ == "__main__":
    print(json.dumps({"xla": xla, "mirrored": mirrored, "mirrored_resize": mirrored_resize}[sys.argv[1]]()))
