"""Bad checkpoints and interrupted saves: a clear error, nothing lost.

Killed saves and concurrent saves run in real processes (checkpoint_worker.py); the directory they
leave is compared byte for byte with the checkpoint it held before, and loaded by transformers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import transformers

from xlm import XLMConfig
from xlm.checkpoint import NonFiniteWeightsError, load_state_dict, save_state_dict
from xlm.torch_backend import XLMWithLMHeadModel
from xlm_testing import make_inputs, tiny_config, transformers_config

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "checkpoint_worker.py")
SHARD = "20KB"  # the tiny model in about ten shards: a kill mid-save finds some written, some not


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE), HERE])}


def _start(options: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, json.dumps(options)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(options: dict) -> None:
    process = _start(options)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def _kill_when_hung(process: subprocess.Popen, marker: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(marker):
        if process.poll() is not None:
            raise AssertionError(f"the worker ended before hanging: {process.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the worker never reached the tensor to hang at"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _snapshot(directory: str) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def _leftovers(target: str) -> list[str]:
    parent, name = os.path.split(target)
    return sorted(e for e in os.listdir(parent) if e.startswith(f".{name}.xlm-"))


def _assert_loads_as(directory: str, expected: dict[str, np.ndarray]) -> None:
    """Our loader, and transformers' for PyTorch files, read exactly `expected` from `directory`."""
    ours = load_state_dict(directory, XLMConfig.from_pretrained(directory), "XLMWithLMHeadModel")
    assert set(ours) <= set(expected) and len(ours) >= len(expected) - 1  # a tied copy may be left out
    for name, value in ours.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    if not any(n.startswith(("model.", "model-", "pytorch_model")) for n in os.listdir(directory)):
        return  # tf_model.h5 only: transformers' PyTorch class cannot read it (from_tf is broken in 4.57)
    reference = transformers.XLMWithLMHeadModel.from_pretrained(directory)
    for name, value in reference.state_dict().items():
        if name == "pred_layer.proj.weight" and name not in expected:  # tied; the Keras state lists it once
            name = "transformer.embeddings.weight"
        np.testing.assert_array_equal(value.numpy(), expected[name], err_msg=name)


def _npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# --- killed saves -------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [True, False], ids=["over-a-checkpoint", "new-directory"])
def test_torch_save_killed_mid_write_leaves_old_checkpoint_or_nothing(tmp_path, existing):
    target = str(tmp_path / "ckpt")
    if existing:
        _run({"job": "torch", "target": target, "seed": 0, "max_shard_size": SHARD,
              "expected": str(tmp_path / "old.npz")})
        with open(os.path.join(target, "README.md"), "w") as f:
            f.write("kept\n")
        before = _snapshot(target)
        assert sum(n.startswith("model-") for n in before) >= 5  # sharded: a kill lands between shards
    worker = _start({"job": "torch", "target": target, "seed": 1, "max_shard_size": SHARD, "hang_at": 20,
                     "marker": str(tmp_path / "hung"), "expected": str(tmp_path / "new.npz")})
    _kill_when_hung(worker, str(tmp_path / "hung"))

    left = _leftovers(target)
    assert len(left) == 1 and left[0].endswith(".tmp"), left
    partial = os.listdir(os.path.join(tmp_path, left[0]))
    assert any(n.startswith("model-") for n in partial)  # it was killed with shards written
    if existing:
        assert _snapshot(target) == before
        _assert_loads_as(target, _npz(str(tmp_path / "old.npz")))
    else:
        assert not os.path.exists(target)

    _run({"job": "torch", "target": target, "seed": 1, "max_shard_size": SHARD})
    assert _leftovers(target) == []
    _assert_loads_as(target, _npz(str(tmp_path / "new.npz")))
    if existing:
        with open(os.path.join(target, "README.md")) as f:
            assert f.read() == "kept\n"


def test_keras_save_killed_between_its_files_leaves_old_checkpoint(tmp_path):
    """TFXLM save_pretrained(safe_serialization=True) writes tf_model.h5, then model.safetensors:
    killed in the second, the directory still holds the old pair, not a new h5 beside an old safetensors."""
    target = str(tmp_path / "ckpt")
    _run({"job": "keras", "target": target, "seed": 0, "expected": str(tmp_path / "old.npz")})
    before = _snapshot(target)
    assert {"tf_model.h5", "model.safetensors", "config.json"} <= set(before)
    worker = _start({"job": "keras", "target": target, "seed": 1, "hang_in": "safetensors", "hang_at": 5,
                     "marker": str(tmp_path / "hung")})
    _kill_when_hung(worker, str(tmp_path / "hung"), timeout=400)
    (left,) = _leftovers(target)
    assert "tf_model.h5" in os.listdir(os.path.join(tmp_path, left))  # the new h5 was complete
    assert _snapshot(target) == before
    _assert_loads_as(target, _npz(str(tmp_path / "old.npz")))


@pytest.mark.parametrize("force", [False, True], ids=["new-output", "force-over-old-output"])
def test_conversion_killed_mid_write_leaves_old_output_or_nothing(tmp_path, force):
    from conversion.convert import convert_checkpoint

    source, output = str(tmp_path / "source"), str(tmp_path / "keras")
    _run({"job": "torch", "target": source, "seed": 0, "expected": str(tmp_path / "weights.npz")})
    if force:
        convert_checkpoint(source, output, quiet=True)
        with open(os.path.join(output, "extra.txt"), "w") as f:
            f.write("x")
        before = _snapshot(output)
    worker = _start({"job": "convert", "source": source, "target": output, "force": force, "hang_at": 15,
                     "marker": str(tmp_path / "hung")})
    _kill_when_hung(worker, str(tmp_path / "hung"))
    assert len(_leftovers(output)) == 1
    if force:
        assert _snapshot(output) == before
    else:
        assert not os.path.exists(output)
    convert_checkpoint(source, output, force=True, quiet=True)
    assert _leftovers(output) == []
    assert not os.path.exists(os.path.join(output, "extra.txt"))  # --force replaces the directory whole
    _assert_loads_as(output, _npz(str(tmp_path / "weights.npz")))


# --- concurrent saves ---------------------------------------------------------------------------


def test_two_processes_saving_into_one_directory_leave_one_complete_checkpoint(tmp_path):
    """Two writers of different checkpoints (2 layers in shards, 3 layers in one file), overlapping
    three times each: the directory holds exactly one of them, whole."""
    target = str(tmp_path / "ckpt")
    jobs = {
        "a": {"seed": 1, "config": {"n_layers": 2}, "max_shard_size": SHARD},
        "b": {"seed": 2, "config": {"n_layers": 3}},
    }
    workers = {}
    for key, job in jobs.items():
        workers[key] = _start({"job": "torch", "target": target, "repeat": 3, "delay": 0.01,
                               "ready": str(tmp_path / f"ready-{key}"), "go": str(tmp_path / "go"),
                               "expected": str(tmp_path / f"{key}.npz"), **job})
    deadline = time.monotonic() + 240
    while not all(os.path.exists(tmp_path / f"ready-{key}") for key in jobs):
        assert all(w.poll() is None for w in workers.values()), [w.stderr.read()[-2000:] for w in workers.values()]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    open(tmp_path / "go", "w").close()
    for worker in workers.values():
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]

    assert _leftovers(target) == []
    names = set(os.listdir(target))
    n_layers = XLMConfig.from_pretrained(target).n_layers
    winner = "a" if n_layers == 2 else "b"
    if winner == "a":
        assert "model.safetensors" not in names and "model.safetensors.index.json" in names
    else:
        assert names == {"config.json", "model.safetensors"}
    _assert_loads_as(target, _npz(str(tmp_path / f"{winner}.npz")))


# --- save_pretrained into an existing directory --------------------------------------------------


def test_save_into_existing_directory_keeps_other_files_and_drops_stale_weights(tmp_path):
    target = tmp_path / "ckpt"
    torch.manual_seed(0)
    model = XLMWithLMHeadModel(tiny_config())
    model.save_pretrained(target, max_shard_size=SHARD)
    (target / "tokenizer_config.json").write_text("{}\n")
    (target / "runs").mkdir()
    (target / "runs" / "log.txt").write_text("log\n")
    (target / ".model.safetensors.abcd1234.tmp").write_bytes(b"an interrupted per-file write")
    torch.manual_seed(1)
    other = XLMWithLMHeadModel(tiny_config())
    files = other.save_pretrained(target)
    assert sorted(os.path.basename(f) for f in files) == ["config.json", "model.safetensors"]
    assert sorted(os.listdir(target)) == ["config.json", "model.safetensors", "runs", "tokenizer_config.json"]
    assert (target / "runs" / "log.txt").read_text() == "log\n"
    _assert_loads_as(str(target), {k: v.numpy() for k, v in other.state_dict().items()})
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o777 & ~_umask())
    assert oct(os.stat(target / "config.json").st_mode & 0o777) == oct(0o666 & ~_umask())


def test_save_into_the_working_directory_follows_it(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    target.mkdir()
    monkeypatch.chdir(target)
    torch.manual_seed(0)
    model = XLMWithLMHeadModel(tiny_config())
    model.save_pretrained(".")
    assert sorted(os.listdir(".")) == ["config.json", "model.safetensors"]  # the cwd is the new directory
    assert os.path.samefile(os.getcwd(), target)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- NaN and infinite weights -------------------------------------------------------------------


def _poisoned_reference(tmp_path, fmt: str = "safetensors"):
    """transformers' XLMWithLMHeadModel with a NaN in the embeddings and an inf in the LM bias, saved."""
    config = tiny_config()
    torch.manual_seed(0)
    reference = transformers.XLMWithLMHeadModel(transformers_config(config)).eval()
    with torch.no_grad():
        reference.transformer.embeddings.weight[20, 3] = float("nan")
        reference.transformer.embeddings.weight[21, 4] = float("nan")
        reference.pred_layer.proj.bias[5] = float("inf")
    directory = str(tmp_path / f"poisoned-{fmt}")
    reference.save_pretrained(directory, safe_serialization=fmt == "safetensors")
    return reference, directory


def _assert_names_poisoned(err: pytest.ExceptionInfo, directory: str, fmt: str = "safetensors") -> None:
    expected = {"transformer.embeddings.weight": (2, 0, 99 * 32), "pred_layer.proj.bias": (0, 1, 99)}
    if fmt == "bin":  # pytorch_model.bin also stores the tied copy of the embeddings
        expected["pred_layer.proj.weight"] = expected["transformer.embeddings.weight"]
    assert err.value.found == expected
    message = str(err.value)
    assert directory in message and "check_finite=False" in message
    assert "transformer.embeddings.weight (2 NaN, 0 inf of 3,168)" in message
    assert "pred_layer.proj.bias (0 NaN, 1 inf of 99)" in message


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_torch_from_pretrained_names_nonfinite_tensors(tmp_path, fmt):
    reference, directory = _poisoned_reference(tmp_path, fmt)
    with pytest.raises(NonFiniteWeightsError) as err:
        XLMWithLMHeadModel.from_pretrained(directory)
    _assert_names_poisoned(err, directory, fmt)
    # opted out: the same (NaN and inf included) outputs as transformers
    model = XLMWithLMHeadModel.from_pretrained(directory, check_finite=False)
    inputs = {k: torch.from_numpy(v) for k, v in make_inputs(model.config).items()
              if k in ("input_ids", "attention_mask")}
    inputs["input_ids"][0, :3] = torch.tensor([20, 21, 22])
    with torch.no_grad():
        ours, theirs = model(**inputs).logits.numpy(), reference(**inputs).logits.numpy()
    assert np.isnan(ours).any() and np.isinf(ours).any()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0, equal_nan=True)


def test_keras_from_pretrained_names_nonfinite_tensors(tmp_path):
    from xlm.tf_backend import TFXLMWithLMHeadModel

    reference, directory = _poisoned_reference(tmp_path)
    with pytest.raises(NonFiniteWeightsError) as err:
        TFXLMWithLMHeadModel.from_pretrained(directory)
    _assert_names_poisoned(err, directory)
    model = TFXLMWithLMHeadModel.from_pretrained(directory, check_finite=False)
    ids = np.array([[20, 21, 22, 30, 40]], dtype=np.int64)
    with torch.no_grad():
        theirs = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    ours = np.asarray(model(input_ids=ids).logits)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0, equal_nan=True)
    # a tf_model.h5 of ours with the same weights is refused too
    model.save_pretrained(str(tmp_path / "keras"))
    with pytest.raises(NonFiniteWeightsError) as err:
        TFXLMWithLMHeadModel.from_pretrained(str(tmp_path / "keras"))
    assert set(err.value.found) == {"transformer.embeddings.weight", "pred_layer.proj.bias"}


def test_finite_check_reads_float16_and_bfloat16(tmp_path):
    import ml_dtypes

    config = tiny_config()
    state = {k: v.detach().numpy() for k, v in XLMWithLMHeadModel(config).state_dict().items()}
    state["transformer.position_embeddings.weight"] = state["transformer.position_embeddings.weight"].astype(np.float16)
    state["transformer.position_embeddings.weight"][1, 1] = np.inf  # float16 overflow, as a bad cast gives
    bias = state["pred_layer.proj.bias"].astype(ml_dtypes.bfloat16)
    bias[7] = np.nan
    state["pred_layer.proj.bias"] = bias
    save_state_dict(state, tmp_path, config, "XLMWithLMHeadModel")
    with pytest.raises(NonFiniteWeightsError) as err:
        load_state_dict(tmp_path, config, "XLMWithLMHeadModel", check_finite=True)
    assert err.value.found == {"transformer.position_embeddings.weight": (0, 1, 64 * 32), "pred_layer.proj.bias": (1, 0, 99)}
    loaded = load_state_dict(tmp_path, config, "XLMWithLMHeadModel")  # default: no check
    assert np.isnan(loaded["pred_layer.proj.bias"][7]) and loaded["pred_layer.proj.bias"].dtype == bias.dtype


def test_conversion_refuses_nonfinite_weights_unless_asked(tmp_path):
    import h5py

    from conversion.convert import convert_checkpoint

    _, source = _poisoned_reference(tmp_path)
    output = str(tmp_path / "keras")
    with pytest.raises(NonFiniteWeightsError) as err:
        convert_checkpoint(source, output, quiet=True)
    _assert_names_poisoned(err, source)
    assert not os.path.exists(output) and _leftovers(output) == []

    command = [sys.executable, "-m", "conversion", "convert", source, output, "--quiet"]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, cwd=os.path.dirname(HERE))
    assert done.returncode == 2, done.stderr
    assert "transformer.embeddings.weight (2 NaN, 0 inf of 3,168)" in done.stderr and "--no-check-finite" in done.stderr
    assert not os.path.exists(output)
    done = subprocess.run(command + ["--no-check-finite"], env=_env(), capture_output=True, text=True,
                          cwd=os.path.dirname(HERE))
    assert done.returncode == 0, done.stderr
    source_state = load_state_dict(source, XLMConfig.from_pretrained(source), "XLMWithLMHeadModel")
    with h5py.File(os.path.join(output, "tf_model.h5")) as f:
        names = [n for n in _h5_datasets(f) if n.endswith("embeddings/weight:0") and "position" not in n]
        assert names  # the embeddings, and their copy in the LM head layer
        for name in names:  # NaN bits kept
            np.testing.assert_array_equal(f[name][()].view(np.uint32),
                                          source_state["transformer.embeddings.weight"].view(np.uint32))


def _h5_datasets(group, prefix: str = "") -> list[str]:
    import h5py

    out = []
    for key, value in group.items():
        if isinstance(value, h5py.Dataset):
            out.append(prefix + key)
        else:
            out.extend(_h5_datasets(value, prefix + key + "/"))
    return out


# --- which weights a directory holds -------------------------------------------------------------


def _both_stacks():
    from xlm.tf_backend import TFXLMWithLMHeadModel

    return [XLMWithLMHeadModel, TFXLMWithLMHeadModel]


@pytest.mark.parametrize("bin_kind", ["another-checkpoint", "garbage"])
def test_safetensors_wins_over_pytorch_model_bin_silently(tmp_path, bin_kind, caplog):
    config = tiny_config()
    torch.manual_seed(0)
    wanted = transformers.XLMWithLMHeadModel(transformers_config(config))
    wanted.save_pretrained(tmp_path, safe_serialization=True)
    if bin_kind == "garbage":
        (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint at all")
    else:
        torch.manual_seed(1)
        other = transformers.XLMWithLMHeadModel(transformers_config(config))
        torch.save(other.state_dict(), tmp_path / "pytorch_model.bin")
    expected = {k: v.numpy() for k, v in wanted.state_dict().items()}
    for cls in _both_stacks():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = cls.from_pretrained(tmp_path)
        about_bin = [str(w.message) for w in caught if "pytorch_model" in str(w.message) or ".bin" in str(w.message)]
        assert about_bin == [], about_bin
        assert not [r for r in caplog.records if "pytorch_model" in r.getMessage()]
        state = model.state_dict()
        for name, value in state.items():
            np.testing.assert_array_equal(np.asarray(value.detach() if hasattr(value, "detach") else value),
                                          expected[name], err_msg=f"{cls.__name__} {name}")


def test_directory_without_weights_names_what_it_looked_for(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{}")
    for cls in _both_stacks():
        with pytest.raises(FileNotFoundError) as err:
            cls.from_pretrained(tmp_path)
        message = str(err.value)
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json", "tf_model.h5", "tf_model.h5.index.json"):
            assert name in message, message
        assert "found config.json, vocab.json" in message


def test_config_json_that_is_not_json_names_the_file(tmp_path):
    torch.manual_seed(0)
    XLMWithLMHeadModel(tiny_config()).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"vocab_size": 99,,}')
    for load in (XLMConfig.from_pretrained, *(cls.from_pretrained for cls in _both_stacks())):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "config.json")) + " is not valid JSON: .*line 1"):
            load(tmp_path)
