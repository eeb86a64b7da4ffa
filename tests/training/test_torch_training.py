"""xlm.torch_backend.training: falling loss, exact resume, accumulation, bf16, DDP == one process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training_helpers import LANGS, lm_batches, lm_config, synthetic_corpus  # noqa: E402
from xlm.torch_backend import XLMForSequenceClassification, XLMWithLMHeadModel  # noqa: E402
from xlm.torch_backend.training import latest_checkpoint, train  # noqa: E402
from xlm.training_data import TokenIds, classification_batches, make_lang2id  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _lm(config, seed=0):
    torch.manual_seed(seed)
    return XLMWithLMHeadModel(config)


def test_loss_falls_and_metrics_are_logged(tmp_path):
    config = lm_config()
    log = tmp_path / "log.jsonl"
    model = _lm(config)
    heads = []  # the loop reads only the loss: the LM head must skip the full logits
    model.pred_layer.register_forward_hook(lambda module, inputs, output: heads.append(output[0] is None))
    result = train(model, lm_batches(config), 40, learning_rate=3e-3, warmup_steps=4, log_file=log, progress=False)
    assert len(heads) == 40 and all(heads)
    losses = np.array(result.losses)
    assert result.step == 40 and len(losses) == 40 and np.isfinite(losses).all()
    assert losses[:10].mean() > np.log(config.vocab_size) - 0.5  # starts near chance
    assert losses[-10:].mean() < losses[:10].mean() - 0.4, losses
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 41))
    assert lines[0]["lr"] == pytest.approx(3e-3 / 4) and lines[3]["lr"] == pytest.approx(3e-3)
    assert lines[-1]["lr"] == pytest.approx(3e-3 / 36)
    assert all(m["targets"] > 0 and m["tokens"] > 0 and m["grad_norm"] > 0 for m in lines)
    np.testing.assert_allclose([m["loss"] for m in lines], losses)


def test_finetune_classifier_fits_a_batch_of_the_pair_task():
    """The pair task needs far more steps than a unit test has; a fixed batch of it (a one-item
    batch source, cycled) must be fitted quickly, through the class-label path of the loop."""
    config = lm_config(num_labels=2, dropout=0.0, attention_dropout=0.0, summary_first_dropout=0.0)
    corpus = synthetic_corpus(100)
    batches = classification_batches(corpus, make_lang2id(LANGS), TokenIds.from_config(config), batch_size=16)
    torch.manual_seed(0)
    model = XLMForSequenceClassification(config)
    result = train(model, [batches[0]], 25, learning_rate=1e-2, warmup_steps=3, progress=False)
    losses = np.array(result.losses)
    assert all(m["targets"] == 16 for m in result.metrics)  # one target per row
    assert losses[0] > 0.6  # chance level for two balanced classes is log 2 = 0.69
    assert losses[-5:].mean() < 0.2, losses


def test_resume_gives_the_uninterrupted_next_step_loss(tmp_path):
    config = lm_config(dropout=0.1, attention_dropout=0.1)  # dropout: the RNG state must come back too
    batches = lm_batches(config)
    settings = dict(learning_rate=3e-3, warmup_steps=2, progress=False)
    uninterrupted = train(_lm(config), batches, 6, **settings).losses

    ckpt = tmp_path / "ckpt"
    log = tmp_path / "log.jsonl"
    first = train(_lm(config), batches, 6, checkpoint_dir=ckpt, checkpoint_every=3, log_file=log, **settings)
    assert first.losses == uninterrupted
    assert latest_checkpoint(ckpt).endswith("step-6")
    (ckpt / "step-6" / "trainer_state.pt").unlink()  # as if the run had died after step 3
    assert latest_checkpoint(ckpt).endswith("step-3")
    assert os.path.isfile(ckpt / "step-3" / "config.json")  # a checkpoint is a save_pretrained dir
    resumed = train(_lm(config, seed=123), batches, 6, checkpoint_dir=ckpt, log_file=log, **settings)
    assert resumed.step == 6 and [m["step"] for m in resumed.metrics] == [4, 5, 6]
    assert resumed.losses == uninterrupted[3:]  # bit-identical: weights, Adam state, schedule, data, RNG
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    # A finished run resumed again has nothing left to do.
    assert train(_lm(config), batches, 6, checkpoint_dir=ckpt, **settings).metrics == []


def test_accumulation_equals_the_full_batch():
    config = lm_config(dropout=0.0, attention_dropout=0.0)
    batches = lm_batches(config, batch_size=8)
    settings = dict(learning_rate=3e-3, warmup_steps=2, progress=False)
    full = train(_lm(config), batches, 4, **settings).losses
    accumulated = train(_lm(config), batches, 4, accumulation_steps=4, **settings).losses
    np.testing.assert_allclose(accumulated, full, rtol=0, atol=2e-5)


def test_bf16_autocast_trains():
    config = lm_config(dropout=0.0, attention_dropout=0.0)
    batches = lm_batches(config)
    full = train(_lm(config), batches, 3, learning_rate=3e-3, progress=False).losses
    half = train(_lm(config), batches, 3, learning_rate=3e-3, bf16=True, progress=False).losses
    assert np.isfinite(half).all() and half != full  # it really ran in bfloat16 ...
    np.testing.assert_allclose(half, full, atol=0.05)  # ... close to float32


def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU), each rank with half of each global batch and
    two accumulation micro-steps, follows the loss trajectory of one process with the whole batch."""
    steps = 4
    env = {**os.environ, "OMP_NUM_THREADS": "1", "USE_TF": "0", "PYTHONPATH": os.pathsep.join(
        [HERE, os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE)), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "ddp.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               os.path.join(HERE, "ddp_worker.py"), str(out), str(steps), "2"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    distributed = json.loads(out.read_text())

    config = lm_config(dropout=0.0, attention_dropout=0.0)
    single = train(_lm(config), lm_batches(config, batch_size=8), steps, learning_rate=3e-3, warmup_steps=2, progress=False)
    assert len(distributed["loss"]) == steps
    np.testing.assert_allclose(distributed["loss"], single.losses, rtol=0, atol=2e-5)
    # Adam hides a wrongly scaled gradient from the losses; the gradient norms show it.
    np.testing.assert_allclose(distributed["grad_norm"], [m["grad_norm"] for m in single.metrics], rtol=1e-5)
