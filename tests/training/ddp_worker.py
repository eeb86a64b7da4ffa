"""Run by test_torch_training.py under torchrun: a few DDP steps of a tiny model; rank 0 writes
the per-step losses and gradient norms as JSON to argv[1]: argv = out steps accumulation_steps."""

import json
import sys

import torch

torch.set_num_threads(1)

from xlm.torch_backend import XLMWithLMHeadModel  # noqa: E402
from training_helpers import lm_batches, lm_config  # noqa: E402
from xlm.torch_backend.training import train  # noqa: E402


def main() -> None:
    out, steps, accumulation = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    config = lm_config(dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = XLMWithLMHeadModel(config)
    result = train(model, lm_batches(config, batch_size=8), steps, learning_rate=3e-3, warmup_steps=2,
                   accumulation_steps=accumulation, progress=False)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"loss": result.losses, "grad_norm": [m["grad_norm"] for m in result.metrics]}, f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
