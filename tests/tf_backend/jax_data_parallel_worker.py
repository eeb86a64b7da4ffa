"""Run by test_keras_training.py with KERAS_BACKEND=jax and XLA_FLAGS giving N host devices:

    python jax_data_parallel_worker.py N

fits a small LM for a few steps, under keras.distribution.DataParallel when N > 1, and prints one JSON
line: the device count, the per-epoch losses and a few weights after training."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]


def main(devices: int) -> dict:
    import jax
    import keras

    from xlm_testing import make_inputs, tiny_config
    from xlm.tf_backend import TFXLMWithLMHeadModel

    assert len(jax.devices()) == devices, jax.devices()
    if devices > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    config = tiny_config("multilang", n_layers=1, dropout=0.0, attention_dropout=0.0)
    keras.utils.set_random_seed(0)
    model = TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config, batch=8, seq_len=8, seed=3)
    inputs.pop("lengths")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    history = model.fit({**inputs, "labels": inputs["input_ids"]}, batch_size=4, epochs=3, shuffle=False,
                        verbose=0)
    weights = model.state_dict()
    picked = {k: weights[k].ravel()[:16].tolist() for k in ("transformer.embeddings.weight", "pred_layer.proj.bias",
                                                           "transformer.attentions.0.q_lin.weight")}
    return {"devices": devices, "losses": history.history["loss"], "weights": picked}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
