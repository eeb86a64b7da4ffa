"""Every failure of a conversion names its cause and leaves no partial output."""

from __future__ import annotations

import os

import numpy as np
import pytest

import conversion.convert
from conversion import convert_checkpoint
from conversion.__main__ import main
from conversion_helpers import leftovers, random_state, write_model_dir
from xlm import XLMConfig
from xlm.checkpoint import CheckpointError, save_state_dict
from xlm.weights import WeightMismatchError
from xlm_testing import tiny_config

ARCH = "XLMWithLMHeadModel"


def _write(directory, state, config, fmt="safetensors"):
    config = XLMConfig.from_dict(config.to_dict())
    config.architectures = [ARCH]
    config.save_pretrained(directory)
    # bypass save_state_dict's own check: write whatever tensors we are given
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file(state, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    else:
        raise NotImplementedError(fmt)


def _assert_no_output(tmp_path, name="out"):
    assert not os.path.exists(tmp_path / name)
    assert leftovers(tmp_path) == []


@pytest.fixture()
def source(tmp_path):
    config = tiny_config("multilang")
    state = write_model_dir(tmp_path / "pt", config, ARCH)
    return config, state, tmp_path


def test_missing_extra_and_misshaped_tensors(source):
    config, state, tmp_path = source
    bad = dict(state)
    del bad["transformer.ffns.0.lin1.bias"]
    bad["transformer.surplus.weight"] = np.zeros(4, np.float32)
    bad["pred_layer.other_head.bias"] = np.zeros(4, np.float32)
    bad["transformer.attentions.1.q_lin.weight"] = np.zeros((32, 16), np.float32)
    (tmp_path / "bad").mkdir()
    _write(tmp_path / "bad", bad, config)
    with pytest.raises(WeightMismatchError) as info:
        convert_checkpoint(tmp_path / "bad", tmp_path / "out", architecture=ARCH, quiet=True)
    message = str(info.value)
    assert "missing (1): transformer.ffns.0.lin1.bias" in message
    assert "unexpected (2): transformer.surplus.weight, pred_layer.other_head.bias" in message
    assert "transformer.attentions.1.q_lin.weight has shape [32, 16], the model needs [32, 32]" in message
    _assert_no_output(tmp_path)


def test_no_architecture_fits(source):
    config, state, tmp_path = source
    bad = dict(state)
    del bad["pred_layer.proj.bias"]
    (tmp_path / "bad").mkdir()
    _write(tmp_path / "bad", bad, config)
    with pytest.raises(WeightMismatchError, match="missing .*pred_layer.proj.bias"):
        convert_checkpoint(tmp_path / "bad", tmp_path / "out", quiet=True)  # config names XLMWithLMHeadModel
    _assert_no_output(tmp_path)


def test_tied_copy_that_differs_is_refused(source):
    pytest.importorskip("torch")
    import torch

    config, state, tmp_path = source
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    tensors["pred_layer.proj.weight"] = tensors["transformer.embeddings.weight"] + 1
    (tmp_path / "bin").mkdir()
    config.save_pretrained(tmp_path / "bin")
    torch.save(tensors, tmp_path / "bin" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pred_layer.proj.weight differs from transformer.embeddings.weight"):
        convert_checkpoint(tmp_path / "bin", tmp_path / "out", architecture=ARCH, quiet=True)
    _assert_no_output(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
@pytest.mark.parametrize("fmt", ["safetensors", "h5"])
def test_damaged_source(damage, fmt, source):
    config, state, tmp_path = source
    directory = tmp_path / fmt
    write_model_dir(directory, config, ARCH, fmt=fmt)
    path = directory / ("model.safetensors" if fmt == "safetensors" else "tf_model.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00" * 48 + data[48:])
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(directory, tmp_path / "out", quiet=True)
    assert str(path) in str(info.value)
    _assert_no_output(tmp_path)


def test_corrupted_tensor_bytes_after_a_valid_header(source):
    """safetensors checks sizes, not contents: a shortened tensor region is still caught."""
    config, state, tmp_path = source
    path = tmp_path / "pt" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        convert_checkpoint(tmp_path / "pt", tmp_path / "out", quiet=True)
    _assert_no_output(tmp_path)


def test_existing_output_is_kept_without_force(source):
    config, state, tmp_path = source
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists .*--force"):
        convert_checkpoint(tmp_path / "pt", tmp_path / "out", quiet=True)
    assert os.listdir(tmp_path / "out") == ["mine.txt"]
    convert_checkpoint(tmp_path / "pt", tmp_path / "out", force=True, quiet=True)
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "tf_model.h5"]
    assert leftovers(tmp_path) == []


class _FailingBar:
    """A progress bar that raises after `after` tensors: a failure in the middle of writing."""

    def __init__(self, after: int, error: BaseException) -> None:
        self.after, self.error, self.calls = after, error, 0

    def update(self, _n: int) -> None:
        self.calls += 1
        if self.calls > self.after:
            raise self.error

    def close(self) -> None:
        pass


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("direction", ["to_keras", "to_pytorch"])
def test_failure_mid_write_leaves_nothing(error, direction, source, monkeypatch):
    config, state, tmp_path = source
    src = tmp_path / "pt"
    if direction == "to_pytorch":
        convert_checkpoint(tmp_path / "pt", tmp_path / "keras", quiet=True)
        src = tmp_path / "keras"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "previous.txt").write_text("previous output")
    bar = _FailingBar(after=5, error=error)
    monkeypatch.setattr(conversion.convert, "_progress", lambda *a, **k: bar)
    with pytest.raises(type(error)):
        convert_checkpoint(src, tmp_path / "out", quiet=True)
    assert bar.calls == 6  # it did fail half-way
    _assert_no_output(tmp_path)
    with pytest.raises(type(error)):  # replacing an existing directory: the old one survives intact
        convert_checkpoint(src, tmp_path / "old", force=True, quiet=True)
    assert os.listdir(tmp_path / "old") == ["previous.txt"]
    assert leftovers(tmp_path) == []


def test_source_without_config_or_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        convert_checkpoint(tmp_path / "empty", tmp_path / "out")
    tiny_config().save_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        convert_checkpoint(tmp_path / "empty", tmp_path / "out")
    _assert_no_output(tmp_path)


# --- the command line ---------------------------------------------------------------------------


def test_cli_errors_are_one_line_without_traceback(source, capsys):
    config, state, tmp_path = source
    (tmp_path / "out").mkdir()
    assert main(["convert", str(tmp_path / "pt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xlm-convert: error: output directory") and "already exists" in err
    assert "Traceback" not in err and err.count("\n") == 1

    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nowhere" in err and err.count("\n") == 1

    assert main(["--debug", "convert", str(tmp_path / "pt"), str(tmp_path / "out")]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "pt"), str(tmp_path / "out"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_cli_convert_both_ways(source, capsys):
    config, state, tmp_path = source
    assert main(["convert", str(tmp_path / "pt"), str(tmp_path / "keras"), "--quiet"]) == 0
    assert "from safetensors to h5" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "keras"), str(tmp_path / "back"), "-q", "--format", "bin"]) == 0
    assert "from h5 to bin" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "back" / "pytorch_model.bin")


def test_cli_help_reads_well(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("convert", "from-original", "parity", "exit status", "--debug", "bundled"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["from-original", "--help"])
    assert "--codes" in capsys.readouterr().out


def test_save_state_dict_refuses_incomplete_state(tmp_path):
    config = tiny_config()
    state = random_state(config, ARCH)
    del state["pred_layer.proj.bias"]
    with pytest.raises(WeightMismatchError, match="pred_layer.proj.bias"):
        save_state_dict(state, tmp_path / "x", config, ARCH)
    assert not os.path.exists(tmp_path / "x" / "model.safetensors")
