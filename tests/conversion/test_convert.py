"""PyTorch <-> Keras conversion: bit-identical round trips, transformers-written directories, models in memory."""

from __future__ import annotations

import filecmp
import os

import h5py
import numpy as np
import pytest
import torch
import transformers

from conversion import (
    convert_checkpoint,
    detect_architecture,
    keras_to_state_dict,
    keras_to_torch,
    state_dict_to_keras,
    torch_to_keras,
)
from conversion_helpers import write_model_dir
from xlm import XLMConfig
from xlm.checkpoint import load_state_dict, open_state_dict
from xlm.weights import ARCHITECTURES, weight_specs
from xlm_testing import CONFIG_VARIANTS, make_inputs, tiny_config, transformers_config

# transformers has no TF twin of the SQuAD beam head; its TF port rejects asm and sinusoidal models
TF_ARCHITECTURES = [a for a in ARCHITECTURES if a != "XLMForQuestionAnswering"]


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_pytorch_keras_pytorch_is_bit_identical(architecture, variant, tmp_path):
    config = tiny_config(variant, num_labels=3)
    state = write_model_dir(tmp_path / "pt", config, architecture)
    keras = convert_checkpoint(tmp_path / "pt", tmp_path / "keras", quiet=True)
    assert keras.output_format == "h5" and keras.architecture == architecture
    assert keras.tensors == len(state) and keras.parameters == sum(v.size for v in state.values())
    with h5py.File(tmp_path / "keras" / "tf_model.h5", "r") as f:  # the Keras layout: transposed kernels
        names = set()
        f.visititems(lambda name, obj: names.add(name.split("/", 2)[2][:-2]) if isinstance(obj, h5py.Dataset) else None)
    assert names == {s.h5_name for s in weight_specs(config, architecture) if s.h5_name}
    back = convert_checkpoint(tmp_path / "keras", tmp_path / "back", quiet=True)
    assert back.output_format == "safetensors"
    assert filecmp.cmp(tmp_path / "pt" / "model.safetensors", tmp_path / "back" / "model.safetensors", shallow=False)
    assert filecmp.cmp(tmp_path / "pt" / "config.json", tmp_path / "back" / "config.json", shallow=False)
    loaded = load_state_dict(tmp_path / "back", config, architecture)
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        assert loaded[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_sharded_and_bin_outputs(fmt, tmp_path):
    config = tiny_config("multilang")
    state = write_model_dir(tmp_path / "pt", config, "XLMWithLMHeadModel")
    convert_checkpoint(tmp_path / "pt", tmp_path / "keras", max_shard_size="20KB", quiet=True)
    assert os.path.isfile(tmp_path / "keras" / "tf_model.h5.index.json")
    result = convert_checkpoint(tmp_path / "keras", tmp_path / "back", format=fmt, quiet=True)
    assert result.output_format == fmt
    loaded = load_state_dict(tmp_path / "back", config, "XLMWithLMHeadModel")
    if fmt == "bin":  # the tied projection is stored in pytorch_model.bin
        np.testing.assert_array_equal(loaded.pop("pred_layer.proj.weight"), state["transformer.embeddings.weight"])
    assert {k: v.tobytes() for k, v in loaded.items()} == {k: v.tobytes() for k, v in state.items()}
    with pytest.raises(ValueError, match="format 'h5' is a keras format, not a pytorch one"):
        convert_checkpoint(tmp_path / "pt", tmp_path / "x", to="pytorch", format="h5")


def _reference(architecture: str, config: XLMConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(transformers_config(config)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _inputs(config: XLMConfig, architecture: str) -> dict[str, np.ndarray]:
    inputs = make_inputs(config, batch=4, seq_len=9)
    inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "langs", "token_type_ids")}
    if architecture == "XLMForMultipleChoice":
        inputs = {k: v.reshape(2, 2, -1) for k, v in inputs.items()}
    return inputs


def _head_output(output) -> np.ndarray:
    value = output[0]
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


@pytest.mark.parametrize("architecture", TF_ARCHITECTURES)
def test_transformers_directories_convert_both_ways(architecture, tmp_path):
    config = tiny_config("multilang", num_labels=2, initializer_range=0.02)
    model = _reference(architecture, config)
    inputs = _inputs(config, architecture)
    with torch.no_grad():
        expected = _head_output(model(**{k: torch.from_numpy(v) for k, v in inputs.items()}))

    # transformers' PyTorch directory -> our Keras directory, which transformers' TF class loads
    model.save_pretrained(tmp_path / "pt")
    convert_checkpoint(tmp_path / "pt", tmp_path / "keras", quiet=True)
    tf_model = getattr(transformers, "TF" + architecture).from_pretrained(tmp_path / "keras")
    np.testing.assert_allclose(_head_output(tf_model(inputs, training=False)), expected, atol=1e-5, rtol=0)

    # transformers' TF directory -> our PyTorch directory, which transformers' PyTorch class loads
    tf_model.save_pretrained(tmp_path / "tf")
    convert_checkpoint(tmp_path / "tf", tmp_path / "pt_again", quiet=True)
    again = getattr(transformers, architecture).from_pretrained(tmp_path / "pt_again").eval()
    assert all(p.device.type == "cpu" for p in again.parameters())  # unlike from_tf=True (meta device)
    with torch.no_grad():
        np.testing.assert_array_equal(_head_output(again(**{k: torch.from_numpy(v) for k, v in inputs.items()})),
                                      expected)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].numpy(), value.numpy(), err_msg=name)

    # our PyTorch stack reads transformers' tf_model.h5 directly into a working model
    from xlm.torch_backend import MODEL_CLASSES

    ours = MODEL_CLASSES[architecture].from_pretrained(tmp_path / "tf")
    with torch.no_grad():
        got = _head_output(ours(**{k: torch.from_numpy(v) for k, v in inputs.items()}))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_conversion_streams_one_tensor_at_a_time(tmp_path):
    """Peak Python-allocated memory while converting stays near the largest tensor, far below
    the checkpoint (numpy reports its buffers to tracemalloc)."""
    import tracemalloc

    config = XLMConfig(vocab_size=2000, emb_dim=256, n_layers=4, n_heads=4, max_position_embeddings=64)
    state = write_model_dir(tmp_path / "pt", config, "XLMWithLMHeadModel")
    total = sum(v.nbytes for v in state.values())
    largest = max(v.nbytes for v in state.values())
    del state
    for source, output in (("pt", "keras"), ("keras", "back")):
        tracemalloc.start()
        convert_checkpoint(tmp_path / source, tmp_path / output, quiet=True)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 4 * largest + 2_000_000 and peak < total / 2, (source, peak, largest, total)


def test_transformers_bin_directory_and_architecture_detection(tmp_path):
    config = tiny_config("multilang", num_labels=3)
    model = _reference("XLMForTokenClassification", config)
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    result = convert_checkpoint(tmp_path / "bin", tmp_path / "keras", quiet=True)
    assert result.source_format == "bin" and result.architecture == "XLMForTokenClassification"
    with open_state_dict(tmp_path / "keras", config, "XLMModel") as reader:
        config.architectures = None
        assert detect_architecture(reader, config) == "XLMForTokenClassification"
    lm = _reference("XLMWithLMHeadModel", config)
    lm.save_pretrained(tmp_path / "lm_bin", safe_serialization=False)  # holds the tied projection too
    result = convert_checkpoint(tmp_path / "lm_bin", tmp_path / "lm_keras", quiet=True)
    assert result.tensors == len(lm.state_dict()) - 1


MODEL_CASES = sorted({(a, "multilang") for a in ARCHITECTURES} | {("XLMWithLMHeadModel", v) for v in CONFIG_VARIANTS}
                     | {("XLMForQuestionAnswering", "sinusoidal"), ("XLMForMultipleChoice", "causal")})


@pytest.mark.parametrize("architecture,variant", MODEL_CASES)
def test_models_convert_in_memory(architecture, variant):
    from xlm.torch_backend import MODEL_CLASSES

    config = tiny_config(variant, num_labels=2 if architecture == "XLMForQuestionAnsweringSimple" else 3)
    torch.manual_seed(0)
    source = MODEL_CLASSES[architecture](config).eval()
    keras_model = torch_to_keras(source)
    back = keras_to_torch(keras_model)
    for name, value in source.state_dict().items():
        assert back.state_dict()[name].numpy().tobytes() == value.numpy().tobytes(), name
    inputs = _inputs(config, architecture)
    inputs.pop("token_type_ids")
    with torch.no_grad():
        expected = _head_output(source(**{k: torch.from_numpy(v) for k, v in inputs.items()}))
        np.testing.assert_array_equal(_head_output(back(**{k: torch.from_numpy(v) for k, v in inputs.items()})),
                                      expected)
    np.testing.assert_allclose(_head_output(keras_model(**inputs)), expected, atol=1e-5, rtol=0)

    state = {k: v.numpy() for k, v in source.state_dict().items()}
    keras_weights = state_dict_to_keras(state, config, architecture)
    assert keras_weights.keys() == {s.keras_name for s in weight_specs(config, architecture) if s.keras_name}
    restored = keras_to_state_dict(keras_weights, config, architecture)
    for name, value in restored.items():
        assert value.tobytes() == state[name].tobytes()
