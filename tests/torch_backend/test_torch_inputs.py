"""Bad inputs raise ValueError with the shared messages of xlm.modeling_utils, before any kernel runs."""

from __future__ import annotations

import re

import pytest
import torch
from torch_parity import torch_inputs

import xlm.torch_backend as ours
from xlm import modeling_utils
from xlm_testing import tiny_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ours.XLMForSequenceClassification(tiny_config("multilang")).eval()


@pytest.fixture(scope="module")
def inputs(model):
    return torch_inputs(model.config)


def expected_message(check, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        check(*args, **kwargs)
    return str(info.value)


def assert_raises_before_kernels(model, message: str, **kwargs) -> None:
    """The call raises ValueError(message) and the embedding lookup never ran."""
    calls = []
    handle = model.transformer.embeddings.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            model(**kwargs)
    finally:
        handle.remove()
    assert not calls


def with_values(tensor: torch.Tensor, value: int) -> torch.Tensor:
    out = tensor.clone()
    out[1, 2] = value
    return out


@pytest.mark.parametrize(
    ("name", "value", "limit_name"),
    [
        ("input_ids", 99, "vocab_size"),
        ("input_ids", -1, "vocab_size"),
        ("token_type_ids", 1000, "vocab_size"),
        ("langs", 3, "n_langs"),
        ("langs", -2, "n_langs"),
        ("position_ids", 64, "max_position_embeddings"),
    ],
)
def test_ids_out_of_range(model, inputs, name, value, limit_name):
    limit = getattr(model.config, limit_name)
    kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "langs", "token_type_ids", "position_ids")}
    kwargs[name] = with_values(kwargs[name], value)
    low, high = int(kwargs[name].min()), int(kwargs[name].max())
    message = expected_message(modeling_utils.check_id_range, name, low, high, limit, limit_name)
    assert str(value) in message
    assert_raises_before_kernels(model, message, **kwargs)


def test_sequence_longer_than_positions(model):
    ids = torch.full((2, 65), 20)
    message = expected_message(modeling_utils.check_sequence_length, 65, 64)
    assert_raises_before_kernels(model, message, input_ids=ids)
    model(input_ids=ids[:, :64])  # the longest allowed runs


@pytest.mark.parametrize("name", ["attention_mask", "langs", "token_type_ids", "position_ids"])
@pytest.mark.parametrize("bad_shape", [(3, 10), (2, 11), (3, 11, 1)])
def test_mismatched_shapes(model, inputs, name, bad_shape):
    kwargs = {"input_ids": inputs["input_ids"], name: torch.zeros(bad_shape, dtype=torch.long)}
    message = expected_message(
        modeling_utils.check_same_shape, "input_ids", tuple(inputs["input_ids"].shape), **{name: bad_shape}
    )
    assert_raises_before_kernels(model, message, **kwargs)


def test_lengths(model, inputs):
    with pytest.raises(ValueError, match=r"lengths has shape \[2\]"):
        model(input_ids=inputs["input_ids"], lengths=inputs["lengths"][:2])
    with pytest.raises(ValueError, match=r"lengths contains 12, outside \[0, 11\]"):
        model(input_ids=inputs["input_ids"], lengths=torch.tensor([12, 3, 4]))


def test_other_misuse(model, inputs):
    ids = inputs["input_ids"]
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(input_ids=ids, inputs_embeds=torch.zeros(*ids.shape, 32))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model()
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, sequence\)"):
        model(input_ids=ids[0])
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, sequence, 32\)"):
        model(inputs_embeds=torch.zeros(3, 11, 16))
    with pytest.raises(ValueError, match=r"head_mask has shape \[3\]"):
        model(input_ids=ids, head_mask=torch.ones(3))
    with pytest.raises(ValueError, match="the cache already holds 11 positions"):
        model(input_ids=ids, cache={"slen": 11})
    with pytest.raises(ValueError, match=r"the input has no positions \(sequence length 0\)"):
        model(input_ids=ids[:, :0])


@pytest.mark.parametrize("return_logits", [True, False])
@pytest.mark.parametrize("bad_shape", [(3, 10), (3, 12), (2, 11), (33,)])
def test_lm_labels_of_another_shape(bad_shape, return_logits):
    """LM labels must line up with the input positions (a shorter set used to give a loss silently)."""
    torch.manual_seed(0)
    lm = ours.XLMWithLMHeadModel(tiny_config("multilang")).eval()
    ids = torch_inputs(lm.config)["input_ids"]  # (3, 11)
    labels = torch.zeros(bad_shape, dtype=torch.long)
    message = rf"labels has shape \({', '.join(map(str, bad_shape))},?\); expected \(3, 11\)"
    with pytest.raises(ValueError, match=message):
        lm(ids, labels=labels, return_logits=return_logits)
