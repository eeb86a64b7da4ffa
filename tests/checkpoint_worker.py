"""A process that saves or converts a checkpoint for test_checkpoint_hardening.py, which kills it
mid-write or runs two at once.

    python checkpoint_worker.py '{"job": "torch", "target": DIR, "seed": 1, ...}'

Jobs: "torch" (XLMWithLMHeadModel.save_pretrained), "keras" (TFXLMWithLMHeadModel.save_pretrained
with safe_serialization: tf_model.h5, then model.safetensors), "convert" (convert_checkpoint).
Options: "hang_at": the tensor (counted over the files written, or only over those of "hang_in",
"safetensors" or "h5") before which the worker writes the file "marker" and sleeps until killed; "delay": seconds to sleep before each tensor (to make
two workers overlap); "repeat": saves in a row; "ready"/"go": touch `ready`, then wait for `go`;
"expected": write the saved weights (PyTorch names) to this .npz; "config": XLMConfig overrides;
"max_shard_size".
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numpy as np  # noqa: E402

import xlm.checkpoint  # noqa: E402
from xlm_testing import tiny_config  # noqa: E402


def hook(options: dict) -> None:
    """Count (and maybe delay or hang at) every tensor the checkpoint writers prepare."""
    calls = {"n": 0}

    def wrap(prepare, writer):
        def prepared(*args, **kwargs):
            if options.get("hang_in", writer) == writer:
                calls["n"] += 1
            if options.get("hang_at") is not None and calls["n"] >= options["hang_at"]:
                with open(options["marker"], "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(600)
            if options.get("delay"):
                time.sleep(options["delay"])
            return prepare(*args, **kwargs)

        return prepared

    xlm.checkpoint._little_endian = wrap(xlm.checkpoint._little_endian, "safetensors")
    xlm.checkpoint._keras_layout = wrap(xlm.checkpoint._keras_layout, "h5")


def main() -> None:
    options = json.loads(sys.argv[1])
    config = tiny_config(**options.get("config", {}))
    if options["job"] == "torch":
        import torch

        from xlm.torch_backend import XLMWithLMHeadModel

        torch.manual_seed(options.get("seed", 0))
        model = XLMWithLMHeadModel(config)
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()}

        def save() -> None:
            model.save_pretrained(options["target"], max_shard_size=options.get("max_shard_size"))
    elif options["job"] == "keras":
        import keras

        from xlm.tf_backend import TFXLMWithLMHeadModel

        keras.utils.set_random_seed(options.get("seed", 0))
        model = TFXLMWithLMHeadModel(config)
        state = {k: np.asarray(v) for k, v in model.state_dict().items()}

        def save() -> None:
            model.save_pretrained(options["target"], safe_serialization=True,
                                  max_shard_size=options.get("max_shard_size"))
    else:
        from conversion.convert import convert_checkpoint

        state = None

        def save() -> None:
            convert_checkpoint(options["source"], options["target"], to=options.get("to"),
                               force=options.get("force", False), quiet=True)
    if options.get("expected") and state is not None:
        np.savez(options["expected"], **state)
    hook(options)
    if options.get("ready"):
        open(options["ready"], "w").close()
        while not os.path.exists(options["go"]):
            time.sleep(0.01)
    for _ in range(options.get("repeat", 1)):
        save()


if __name__ == "__main__":
    main()
