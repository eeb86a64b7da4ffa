"""xlm.checkpoint against directories written by transformers 4.57.6, in every format and head."""

from __future__ import annotations

import json
import os
import re
import sys

import h5py
import numpy as np
import pytest
import torch
import transformers

from xlm import XLMConfig
from xlm.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_state_dict,
    open_state_dict,
    resolve_pretrained_dir,
    save_state_dict,
)
from xlm.weights import ARCHITECTURES, WeightMismatchError, match_state_dict, weight_specs
from xlm_testing import CONFIG_VARIANTS, tiny_config, transformers_config

TF_ARCHITECTURES = [a for a in ARCHITECTURES if a != "XLMForQuestionAnswering"]  # transformers has no TF twin


def _config(variant: str = "multilang", architecture: str = "") -> XLMConfig:
    # initializer_range: transformers' TFXLMForMultipleChoice reads it (XLMConfig lacks it);
    # the simple QA head splits its output in two (start, end).
    num_labels = 2 if architecture == "XLMForQuestionAnsweringSimple" else 3
    return tiny_config(variant, num_labels=num_labels, initializer_range=0.02)


def _reference_model(architecture: str, config: XLMConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(transformers_config(config)).eval()
    with torch.no_grad():  # non-trivial values everywhere (LayerNorm / biases start at 1 / 0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _assert_same(loaded: dict, reference: dict, allow_missing: tuple[str, ...] = ()) -> None:
    assert set(reference) - set(loaded) <= set(allow_missing), sorted(set(reference) - set(loaded))
    assert set(loaded) <= set(reference), sorted(set(loaded) - set(reference))
    for name, value in loaded.items():
        assert value.dtype == reference[name].dtype, name
        np.testing.assert_array_equal(value, reference[name], err_msg=name)


def _random_state(config: XLMConfig, architecture: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        s.torch_name: rng.standard_normal(s.shape).astype(np.float32)
        for s in weight_specs(config, architecture)
        if s.tied_to is None
    }


TIED = ("pred_layer.proj.weight",)


# --- PyTorch formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_reads_transformers_safetensors_and_bin_and_transformers_reads_ours(architecture, tmp_path):
    config = _config(architecture=architecture)
    model = _reference_model(architecture, config)
    reference = _numpy_state(model)
    model.save_pretrained(tmp_path / "safe")
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)

    from_safe = load_state_dict(tmp_path / "safe", config, architecture)
    from_bin = load_state_dict(tmp_path / "bin", config, architecture)
    _assert_same(from_safe, reference, allow_missing=TIED)  # safetensors omits the tied projection
    _assert_same(from_bin, reference)
    match = match_state_dict(weight_specs(config, architecture), from_safe, config, architecture)
    assert not (match.missing or match.unexpected or match.mismatched or match.fresh_head or match.unused_head)

    for fmt in ("safetensors", "bin"):
        out = tmp_path / f"ours_{fmt}"
        save_state_dict(from_safe, out, config, architecture, format=fmt)
        config.save_pretrained(out)
        reloaded = getattr(transformers, architecture).from_pretrained(out)
        _assert_same(_numpy_state(reloaded), reference)
        _assert_same(load_state_dict(out, config, architecture), reference, allow_missing=TIED)


def test_safetensors_layout_matches_transformers(tmp_path):
    config = _config()
    model = _reference_model("XLMWithLMHeadModel", config)
    model.save_pretrained(tmp_path / "theirs")
    save_state_dict(_numpy_state(model), tmp_path / "ours", config, "XLMWithLMHeadModel")
    from safetensors import safe_open

    with safe_open(tmp_path / "theirs" / "model.safetensors", "np") as a, \
            safe_open(tmp_path / "ours" / "model.safetensors", "np") as b:
        assert b.metadata() == a.metadata() == {"format": "pt"}
        assert sorted(b.keys()) == sorted(a.keys())
        assert "pred_layer.proj.weight" not in b.keys()
    with open(tmp_path / "ours" / "model.safetensors", "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        assert (8 + header_len) % 8 == 0


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_pytorch_checkpoints(fmt, tmp_path):
    config = _config()
    model = _reference_model("XLMWithLMHeadModel", config)
    reference = _numpy_state(model)
    model.save_pretrained(tmp_path / "theirs", max_shard_size="20KB", safe_serialization=fmt == "safetensors")
    index_name = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
    assert os.path.isfile(tmp_path / "theirs" / index_name)
    loaded = load_state_dict(tmp_path / "theirs", config, "XLMWithLMHeadModel")
    _assert_same(loaded, reference, allow_missing=TIED)

    files = save_state_dict(loaded, tmp_path / "ours", config, "XLMWithLMHeadModel", format=fmt, max_shard_size="20KB")
    assert len(files) > 3 and files[-1].endswith(index_name)
    ours = json.loads((tmp_path / "ours" / index_name).read_text())
    theirs = json.loads((tmp_path / "theirs" / index_name).read_text())
    assert ours["metadata"] == theirs["metadata"]  # {"total_parameters", "total_size"}
    assert ours["weight_map"].keys() == theirs["weight_map"].keys()
    assert len(set(ours["weight_map"].values())) == len(files) - 1
    config.save_pretrained(tmp_path / "ours")
    reloaded = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path / "ours")
    _assert_same(_numpy_state(reloaded), reference)
    _assert_same(load_state_dict(tmp_path / "ours" / index_name, config, "XLMWithLMHeadModel"), reference,
                 allow_missing=TIED)


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("fmt", ["safetensors", "bin", "h5"])
def test_every_variant_round_trips(variant, fmt, tmp_path):
    config = _config(variant)
    for architecture in ("XLMModel", "XLMWithLMHeadModel", "XLMForQuestionAnswering"):
        state = _random_state(config, architecture)
        save_state_dict(state, tmp_path / architecture, config, architecture, format=fmt)
        loaded = load_state_dict(tmp_path / architecture, config, architecture)
        if fmt == "bin" and "pred_layer.proj.weight" in loaded:  # the tied copy is stored in .bin
            np.testing.assert_array_equal(loaded.pop("pred_layer.proj.weight"), state["transformer.embeddings.weight"])
        _assert_same(loaded, state)


def test_asm_transformers_bin_spurious_projection_is_ignored(tmp_path):
    config = _config("asm")
    model = _reference_model("XLMWithLMHeadModel", config)
    reference = _numpy_state(model)
    model.save_pretrained(tmp_path, safe_serialization=False)
    loaded = load_state_dict(tmp_path, config, "XLMWithLMHeadModel")
    match = match_state_dict(weight_specs(config, "XLMWithLMHeadModel"), loaded, config, "XLMWithLMHeadModel")
    match.raise_for_errors()
    assert not match.fresh_head
    for name, value in match.tensors.items():
        np.testing.assert_array_equal(value, reference[name])


def test_bfloat16_round_trips(tmp_path):
    config = _config()
    model = _reference_model("XLMModel", config).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "theirs")
    loaded = load_state_dict(tmp_path / "theirs", config, "XLMModel")
    assert loaded["embeddings.weight"].dtype.name == "bfloat16"
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(loaded[name].view(np.uint16), tensor.view(torch.int16).numpy().view(np.uint16))
    for fmt in ("safetensors", "bin"):
        save_state_dict(loaded, tmp_path / fmt, config, "XLMModel", format=fmt)
        again = load_state_dict(tmp_path / fmt, config, "XLMModel")
        for name in loaded:
            np.testing.assert_array_equal(again[name].view(np.uint16), loaded[name].view(np.uint16))


# --- tf_model.h5 --------------------------------------------------------------------------------


def _unnumbered(text: str) -> str:
    """Drop Keras' uniquifying suffix from model names ('tfxlm_model_3/' -> 'tfxlm_model/'): it
    depends on how many models the test process built before, not on the file layout."""
    return re.sub(r"(tfxlm_[a-z_]+?)_\d+\b", r"\1", text)


def _h5_layout(path) -> list:
    """Every group / dataset with its attributes, minus weightless layers (transformers' token
    classifier lists its Dropout layer under an auto-numbered name such as 'dropout_32')."""
    out = []
    with h5py.File(path, "r") as f:
        weightless = {k for k in f if k != "top_level_model_weights" and len(f[k].attrs["weight_names"]) == 0}

        def visit(name, obj):
            if name.split("/")[0] in weightless:
                return
            attrs = []
            for key, value in sorted(obj.attrs.items()):
                if key == "layer_names":
                    value = [v for v in value if v not in weightless]
                attrs.append((key, _unnumbered(str(value)), obj.attrs.get_id(key).dtype))
            out.append((_unnumbered(name), type(obj).__name__, getattr(obj, "shape", None),
                        str(getattr(obj, "dtype", "")), attrs))

        visit("/", f)
        f.visititems(visit)
    return out


def _tf_weights(model) -> dict[str, np.ndarray]:
    return {w.name.split("/", 1)[1]: w.numpy() for w in model.weights}


@pytest.fixture(scope="module")
def tf_checkpoints(tmp_path_factory):
    """architecture -> (config, reference PyTorch state, transformers-written TF dir)."""
    out = {}
    for architecture in TF_ARCHITECTURES:
        config = _config(architecture=architecture)
        model = _reference_model(architecture, config)
        pt_dir = tmp_path_factory.mktemp("pt")
        model.save_pretrained(pt_dir)
        tf_model = getattr(transformers, "TF" + architecture).from_pretrained(pt_dir, from_pt=True)
        tf_dir = tmp_path_factory.mktemp("tf")
        tf_model.save_pretrained(tf_dir)
        out[architecture] = (config, _numpy_state(model), tf_dir, _tf_weights(tf_model))
    return out


@pytest.mark.parametrize("architecture", TF_ARCHITECTURES)
def test_h5_both_ways_with_transformers(architecture, tf_checkpoints, tmp_path):
    config, reference, tf_dir, tf_reference = tf_checkpoints[architecture]
    loaded = load_state_dict(tf_dir, config, architecture)
    _assert_same(loaded, reference, allow_missing=TIED)

    save_state_dict(loaded, tmp_path, config, architecture, format="h5")
    assert _h5_layout(tmp_path / "tf_model.h5") == _h5_layout(tf_dir / "tf_model.h5")
    config.save_pretrained(tmp_path)
    tf_model = getattr(transformers, "TF" + architecture).from_pretrained(tmp_path)
    tf_loaded = _tf_weights(tf_model)
    assert sorted(tf_loaded) == sorted(tf_reference)
    for name, value in tf_reference.items():
        np.testing.assert_array_equal(tf_loaded[name], value, err_msg=name)


def test_h5_sharded_both_ways(tf_checkpoints, tmp_path):
    architecture = "XLMWithLMHeadModel"
    config, reference, tf_dir, tf_reference = tf_checkpoints[architecture]
    tf_model = transformers.TFXLMWithLMHeadModel.from_pretrained(tf_dir)
    tf_model.save_pretrained(tmp_path / "theirs", max_shard_size="20KB")
    assert os.path.isfile(tmp_path / "theirs" / "tf_model.h5.index.json")
    loaded = load_state_dict(tmp_path / "theirs", config, architecture)
    _assert_same(loaded, reference, allow_missing=TIED)

    save_state_dict(loaded, tmp_path / "ours", config, architecture, format="h5", max_shard_size="20KB")
    ours = json.loads((tmp_path / "ours" / "tf_model.h5.index.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "tf_model.h5.index.json").read_text())
    def strip(names):  # tf-keras numbers a second model of a class in one process: 'tfxlm_..._2/'
        return sorted(n.split("/", 1)[1] for n in names)

    assert strip(ours["weight_map"]) == strip(theirs["weight_map"])
    assert ours["metadata"] == theirs["metadata"]
    config.save_pretrained(tmp_path / "ours")
    tf_loaded = _tf_weights(transformers.TFXLMWithLMHeadModel.from_pretrained(tmp_path / "ours"))
    for name, value in tf_reference.items():
        np.testing.assert_array_equal(tf_loaded[name], value, err_msg=name)


def test_h5_base_model_reads_head_checkpoint(tf_checkpoints):
    config, reference, tf_dir, _ = tf_checkpoints["XLMWithLMHeadModel"]
    loaded = load_state_dict(tf_dir, config, "XLMModel")
    assert "embeddings.weight" in loaded and "pred_layer.proj.bias" in loaded
    match = match_state_dict(weight_specs(config, "XLMModel"), loaded, config, "XLMModel")
    match.raise_for_errors()
    assert match.unused_head == ["pred_layer.proj.bias"]
    np.testing.assert_array_equal(match.tensors["attentions.0.q_lin.weight"], reference["transformer.attentions.0.q_lin.weight"])


# --- errors -------------------------------------------------------------------------------------


@pytest.fixture()
def lm_dir(tmp_path):
    config = _config()
    state = _random_state(config, "XLMWithLMHeadModel")
    for fmt in ("safetensors", "bin", "h5"):
        save_state_dict(state, tmp_path / fmt, config, "XLMWithLMHeadModel", format=fmt)
    return config, state, tmp_path


def test_missing_unexpected_misshaped_are_listed(lm_dir):
    config, state, _ = lm_dir
    specs = weight_specs(config, "XLMWithLMHeadModel")
    bad = dict(state)
    del bad["transformer.ffns.1.lin2.bias"]
    bad["transformer.extra.weight"] = np.zeros(3, np.float32)
    bad["transformer.layer_norm_emb.weight"] = np.zeros(31, np.float32)
    with pytest.raises(WeightMismatchError) as info:
        match_state_dict(specs, bad, config, "XLMWithLMHeadModel").raise_for_errors()
    message = str(info.value)
    assert "missing (1): transformer.ffns.1.lin2.bias" in message
    assert "unexpected (1): transformer.extra.weight" in message
    assert "transformer.layer_norm_emb.weight has shape [31], the model needs [32]" in message
    with pytest.raises(WeightMismatchError, match="transformer.ffns.1.lin2.bias"):
        save_state_dict(bad, lm_dir[2] / "never", config, "XLMWithLMHeadModel")
    assert not os.path.exists(lm_dir[2] / "never" / "model.safetensors")


def test_misshaped_h5_tensor_is_reported_in_pytorch_layout(lm_dir, tmp_path):
    config, state, _ = lm_dir
    wrong = tiny_config("multilang", num_labels=3, emb_dim=16, n_heads=4)
    save_state_dict(_random_state(wrong, "XLMWithLMHeadModel"), tmp_path / "w", wrong, "XLMWithLMHeadModel", format="h5")
    loaded = load_state_dict(tmp_path / "w", config, "XLMWithLMHeadModel")
    assert loaded["transformer.ffns.0.lin1.weight"].shape == (64, 16)  # transposed back to PyTorch layout
    with pytest.raises(WeightMismatchError, match=r"transformer.ffns.0.lin1.weight has shape \[64, 16\], the model needs \[128, 32\]"):
        match_state_dict(weight_specs(config, "XLMWithLMHeadModel"), loaded, config, "XLMWithLMHeadModel").raise_for_errors()


@pytest.mark.parametrize("fmt,filename", [("safetensors", "model.safetensors"), ("bin", "pytorch_model.bin"), ("h5", "tf_model.h5")])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_files_name_the_file(lm_dir, fmt, filename, damage):
    config, _, root = lm_dir
    path = root / fmt / filename
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"\x07" * 64 + data[64:])
    with pytest.raises(CheckpointError) as info:
        load_state_dict(root / fmt, config, "XLMWithLMHeadModel")
    assert str(path) in str(info.value)
    assert "corrupted" in str(info.value) or "truncated" in str(info.value)


def test_no_checkpoint_in_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in .*model\.safetensors.*found config\.json"):
        load_state_dict(tmp_path, _config(), "XLMModel")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_state_dict(tmp_path / "absent", _config(), "XLMModel")


def test_missing_shard_is_named(tmp_path):
    config = _config()
    files = save_state_dict(_random_state(config, "XLMModel"), tmp_path, config, "XLMModel", max_shard_size="20KB")
    os.remove(files[1])
    with pytest.raises(FileNotFoundError, match=os.path.basename(files[1])):
        load_state_dict(tmp_path, config, "XLMModel")


def test_bin_with_python_objects_is_refused(tmp_path):
    import argparse

    torch.save({"embeddings.weight": torch.zeros(2), "params": argparse.Namespace(a=1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"argparse.Namespace.*weights_only"):
        load_state_dict(tmp_path, _config(), "XLMModel")


def test_lazy_reader_and_progress(lm_dir, tmp_path):
    config, state, root = lm_dir
    seen = []
    with open_state_dict(root / "h5", config, "XLMWithLMHeadModel") as reader:
        assert reader.format == "h5"
        lazy = reader["transformer.attentions.0.q_lin.weight"]
        assert lazy.shape == (32, 32) and lazy.dtype == np.float32
        save_state_dict(reader, tmp_path, config, "XLMWithLMHeadModel", progress=lambda n, b: seen.append((n, b)))
    assert len(seen) == len(state) and sum(b for _, b in seen) == sum(v.nbytes for v in state.values())
    _assert_same(load_state_dict(tmp_path, config, "XLMWithLMHeadModel"), state)


def test_stale_weight_files_are_removed(tmp_path):
    config = _config()
    state = _random_state(config, "XLMModel")
    save_state_dict(state, tmp_path, config, "XLMModel", max_shard_size="20KB")
    save_state_dict(state, tmp_path, config, "XLMModel")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]
    assert find_checkpoint(tmp_path)[0] == "safetensors"


# --- resolving names ----------------------------------------------------------------------------


def test_resolve_local_and_hub_errors(tmp_path, monkeypatch):
    assert resolve_pretrained_dir(tmp_path) == str(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="f.txt"):
        resolve_pretrained_dir(tmp_path / "f.txt")
    with pytest.raises(FileNotFoundError, match="neither an existing directory"):
        resolve_pretrained_dir(str(tmp_path / "no" / "such" / "dir"))
    with pytest.raises(OSError, match="not reachable") as info:
        resolve_pretrained_dir("someone/xlm-not-cached", local_files_only=True, cache_dir=str(tmp_path / "cache"))
    assert "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match="huggingface_hub"):
        resolve_pretrained_dir("someone/xlm-not-cached")
