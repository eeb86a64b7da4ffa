"""State-dict names and shapes (the weight table), tied weights and the initialisation scheme."""

from __future__ import annotations

import math

import pytest
import torch
from torch_parity import ARCHITECTURES, model_pair

import xlm.torch_backend as ours
from xlm.weights import weight_specs
from xlm_testing import CONFIG_VARIANTS, tiny_config


@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_state_dict_equals_weight_table(variant, architecture):
    model = getattr(ours, architecture)(tiny_config(variant))
    table = {spec.torch_name: spec.shape for spec in weight_specs(model.config, architecture)}
    actual = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert actual == table
    assert list(actual) == list(table)  # same order too
    trainable = {spec.torch_name: spec.trainable for spec in weight_specs(model.config, architecture)}
    for name, param in model.named_parameters(remove_duplicate=False):
        assert param.requires_grad == trainable[name], name


@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_same_names_and_shapes_as_transformers(variant, architecture):
    reference, model = model_pair(variant, architecture)
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    if variant == "asm" and architecture == "XLMWithLMHeadModel":
        expected.pop("pred_layer.proj.weight")  # transformers' spurious tie on the adaptive softmax
    assert {name: tuple(t.shape) for name, t in model.state_dict().items()} == expected


@pytest.mark.parametrize("variant", ["default", "sinusoidal", "multilang"])
def test_output_embeddings_are_tied(variant):
    model = ours.XLMWithLMHeadModel(tiny_config(variant))
    assert model.pred_layer.proj.weight is model.transformer.embeddings.weight
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    # a training step keeps them tied
    ids = torch.randint(14, model.config.vocab_size, (2, 5))
    model(ids, labels=ids).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.equal(model.pred_layer.proj.weight, model.transformer.embeddings.weight)


def test_asm_has_no_tied_weight():
    model = ours.XLMWithLMHeadModel(tiny_config("asm"))
    assert model.get_output_embeddings() is None
    assert not hasattr(model.pred_layer.proj, "weight")
    assert model.config.asm_cutoffs == [30, 60] and model.pred_layer.proj.div_value == 2.0


def test_asm_defaults_are_the_original_repos():
    config = tiny_config("default", asm=True, vocab_size=30000, emb_dim=32)
    model = ours.XLMWithLMHeadModel(config)
    assert model.pred_layer.proj.cutoffs == [8000, 20000, 30000]
    assert model.pred_layer.proj.div_value == 4.0


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_initialisation_scheme(architecture):
    config = tiny_config("multilang", vocab_size=2000, emb_dim=64, init_std=0.05, embed_init_std=0.1)
    torch.manual_seed(0)
    model = getattr(ours, architecture)(config)
    base = model.base_model
    embeddings = base.embeddings.weight.detach()
    assert torch.all(embeddings[config.pad_index] == 0)
    others = torch.cat([embeddings[: config.pad_index], embeddings[config.pad_index + 1 :]])
    assert others.std().item() == pytest.approx(0.1, rel=0.05)
    assert abs(others.mean().item()) < 0.01
    assert base.position_embeddings.weight.std().item() == pytest.approx(0.1, rel=0.05)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
        elif isinstance(module, torch.nn.Linear) and module.weight is not base.embeddings.weight:
            if module.weight.numel() >= 1000:
                assert module.weight.std().item() == pytest.approx(0.05, rel=0.1), name
            if module.bias is not None:
                assert torch.all(module.bias == 0), name
    if architecture == "XLMWithLMHeadModel":
        assert model.pred_layer.proj.weight is base.embeddings.weight


def test_sinusoidal_positions_are_fixed():
    config = tiny_config("sinusoidal")
    model = ours.XLMModel(config)
    table = model.position_embeddings.weight
    assert not table.requires_grad
    pos, j = 7, 5  # odd column: cos(pos / 10000^(2·(j//2)/dim))
    assert table[pos, j].item() == pytest.approx(math.cos(pos / 10000 ** (2 * (j // 2) / config.emb_dim)), abs=1e-6)
    assert table[pos, j - 1].item() == pytest.approx(math.sin(pos / 10000 ** (2 * (j // 2) / config.emb_dim)), abs=1e-6)
    model.init_weights()  # re-initialising keeps the table
    assert torch.equal(model.position_embeddings.weight, table)
