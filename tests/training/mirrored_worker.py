"""Run by test_tf_training.py in a subprocess: trains the same tiny model with MirroredStrategy on
one and on two logical CPU devices (same global batches) and writes both loss trajectories as
JSON to argv[1]. Logical devices must be configured before TensorFlow initialises."""

import json
import sys

import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from training_helpers import lm_batches, lm_config  # noqa: E402
from xlm.tf_backend import TFXLMWithLMHeadModel  # noqa: E402
from xlm.tf_backend.training import train  # noqa: E402


def main() -> None:
    config = lm_config(dropout=0.0, attention_dropout=0.0)
    batches = lm_batches(config, batch_size=8)
    out = {"replicas": []}
    for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
        strategy = tf.distribute.MirroredStrategy(devices)
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = TFXLMWithLMHeadModel(config)
        # eps=1 makes Adam's step scale with the gradient (a wrongly scaled gradient would show),
        # and the clipping threshold is below the first steps' gradient norms (clipping is active).
        result = train(model, batches, 5, learning_rate=2e-2, warmup_steps=1, eps=1.0, max_grad_norm=2.0, progress=False)
        out[name] = result.losses
        out["replicas"].append(strategy.num_replicas_in_sync)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
