"""Fused (SDPA) and explicit attention agree; gradients match transformers; masked rows; torch.compile."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch_parity import TOLERANCE, assert_outputs_close, max_diff, model_pair, torch_inputs

import xlm.torch_backend as ours
from xlm.torch_backend.layers import VOCABULARY_BLOCK, XLMPredLayer, lm_cross_entropy, project_to_vocabulary
from xlm_testing import CONFIG_VARIANTS, tiny_config


def kwargs_for(config, padding: str) -> dict:
    inputs = torch_inputs(config)
    kwargs = {k: inputs[k] for k in ("input_ids", "langs", "token_type_ids", "position_ids")}
    if padding != "pad_index":
        kwargs[padding] = inputs[padding]
    return kwargs


@pytest.mark.parametrize("padding", ["attention_mask", "lengths", "pad_index"])
@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
def test_sdpa_equals_explicit(variant, padding):
    _, model = model_pair(variant, "XLMForTokenClassification")
    kwargs = kwargs_for(model.config, padding)
    with torch.no_grad():
        fused = model(**kwargs, output_hidden_states=True)
        model.set_attn_implementation("eager")
        try:
            explicit = model(**kwargs, output_hidden_states=True)
        finally:
            model.set_attn_implementation("sdpa")
    assert_outputs_close(fused, explicit)


@pytest.mark.parametrize("variant", ["default", "causal", "multilang", "asm"])
def test_gradients_match_transformers(variant):
    """Training mode without dropout: loss and every parameter gradient equal transformers'
    (this runs the fused attention backward and the LM loss's own backward)."""
    overrides = (("dropout", 0.0), ("attention_dropout", 0.0))
    architecture = "XLMForTokenClassification" if variant == "asm" else "XLMWithLMHeadModel"
    reference, model = model_pair(variant, architecture, overrides)
    config = model.config
    kwargs = kwargs_for(config, "attention_mask")
    labels = kwargs["input_ids"].clone() if architecture == "XLMWithLMHeadModel" else kwargs["input_ids"] % 2
    labels[:, ::3] = -100
    reference.train(), model.train()
    try:
        expected = reference(**kwargs, labels=labels)
        actual = model(**kwargs, labels=labels)
        expected.loss.backward()
        actual.loss.backward()
    finally:
        reference.eval(), model.eval()
    assert abs(expected.loss.item() - actual.loss.item()) <= TOLERANCE
    reference_grads = dict(reference.named_parameters())
    worst = 0.0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        worst = max(worst, max_diff(reference_grads[name].grad, param.grad))
    reference.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    assert worst <= TOLERANCE


@pytest.mark.parametrize("architecture", ["XLMModel", "XLMWithLMHeadModel"])
def test_dropout_masks_match_transformers_for_the_same_seed(architecture):
    """Training mode with dropout: the same torch seed draws the same masks as transformers, so outputs agree."""
    reference, model = model_pair("default", architecture, (("dropout", 0.3), ("attention_dropout", 0.3)))
    kwargs = kwargs_for(model.config, "attention_mask")
    reference.train(), model.train()
    try:
        torch.manual_seed(5)
        expected = reference(**kwargs)[0]
        torch.manual_seed(5)
        actual = model(**kwargs)[0]
        torch.manual_seed(6)
        other_seed = model(**kwargs)[0]
    finally:
        reference.eval(), model.eval()
    assert max_diff(expected, actual) <= TOLERANCE
    assert max_diff(expected, other_seed) > 0.1  # dropout is on: another seed gives other outputs


def test_lm_cross_entropy_equals_torch():
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 7, 50, generator=generator) * 4).requires_grad_()
    labels = torch.randint(0, 50, (2, 7), generator=generator)
    labels[0, :3] = -100
    expected = torch.nn.functional.cross_entropy(logits.view(-1, 50), labels.view(-1))
    (expected_grad,) = torch.autograd.grad(expected, logits)
    actual = lm_cross_entropy(logits, labels)
    (actual_grad,) = torch.autograd.grad(actual, logits)
    assert abs(expected.item() - actual.item()) <= 1e-6
    assert max_diff(expected_grad, actual_grad) <= 1e-7
    ignored = torch.full((2, 7), -100)
    for function in (torch.nn.functional.cross_entropy, lm_cross_entropy):
        logits.grad = None
        loss = function(logits.view(-1, 50), ignored.view(-1))
        loss.backward()
        assert torch.isnan(loss) and torch.all(logits.grad == 0)  # nothing to learn: NaN loss, zero gradient
    for bad in (50, -5):
        with pytest.raises(RuntimeError, match="out of bounds"):
            lm_cross_entropy(logits, torch.full((2, 7), bad))


@pytest.mark.parametrize("variant", ["default", "asm"])
def test_return_logits_false_gives_the_same_loss_and_gradients(variant):
    config = tiny_config(variant, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = ours.XLMWithLMHeadModel(config).train()
    kwargs = kwargs_for(config, "attention_mask")
    labels = kwargs["input_ids"].clone()
    labels[torch.rand(labels.shape, generator=torch.Generator().manual_seed(1)) >= 0.3] = -100
    losses, grads = [], []
    for return_logits in (True, False):
        output = model(**kwargs, labels=labels, return_logits=return_logits)
        assert (output.logits is not None) == return_logits
        losses.append(output.loss)
        grads.append(torch.autograd.grad(output.loss, list(model.parameters()), allow_unused=True))
    assert abs(losses[0].item() - losses[1].item()) <= 1e-6
    for full, alone in zip(*grads):
        assert (full is None) == (alone is None)
        assert full is None or max_diff(full, alone) <= 1e-6
    assert model(**kwargs, labels=labels, return_logits=False, return_dict=False)[0] == output.loss
    with pytest.raises(ValueError, match="return_logits=False needs labels"):
        model(**kwargs, return_logits=False)


@pytest.mark.parametrize("rows", [1, 16, 300])
def test_blocked_vocabulary_projection_is_f_linear_bit_for_bit(rows):
    generator = torch.Generator().manual_seed(0)
    n_words = 2 * VOCABULARY_BLOCK + 123  # blocked: more than two blocks, the last one partial
    weight = (torch.randn(n_words, 32, generator=generator) * 0.1).requires_grad_()
    bias = torch.randn(n_words, generator=generator).requires_grad_()
    x = torch.randn(rows, 32, generator=generator).requires_grad_()
    expected = torch.nn.functional.linear(x, weight, bias)
    actual = project_to_vocabulary(x, weight, bias)
    assert torch.equal(actual, expected)
    assert torch.equal(project_to_vocabulary(x, weight, None), torch.nn.functional.linear(x, weight))
    upstream = torch.randn(expected.shape, generator=generator)
    exact = torch.nn.functional.linear(*(t.double() for t in (x, weight, bias)))
    # x's gradient is summed block by block: as close to the float64 gradient as F.linear's
    for exact_grad, expected_grad, actual_grad in zip(
        torch.autograd.grad(exact, (x, weight, bias), upstream.double()),
        torch.autograd.grad(expected, (x, weight, bias), upstream),
        torch.autograd.grad(actual, (x, weight, bias), upstream),
    ):
        assert max_diff(actual_grad.double(), exact_grad) <= 2 * max_diff(expected_grad.double(), exact_grad) + 1e-9


def test_a_hooked_lm_projection_runs_its_own_forward():
    """LoRA or quantisation wrappers hook or replace pred_layer.proj: the head must call it."""
    config = tiny_config("default")
    layer = XLMPredLayer(config)
    calls = []
    layer.proj.register_forward_hook(lambda module, inputs, output: calls.append(output.shape))
    hidden = torch.randn(2, 5, config.emb_dim)
    layer(hidden)
    layer(hidden, torch.randint(0, config.vocab_size, (2, 5)))
    assert calls == [(10, config.vocab_size)] * 2


@pytest.mark.parametrize("logits_used", [False, True])
@pytest.mark.parametrize("labelled", [0.15, 1.0, 0.0])
def test_lm_head_loss_equals_linear_then_cross_entropy(labelled, logits_used):
    """The LM head's fused loss (backward through the labelled rows only) gives F.linear +
    F.cross_entropy's loss and gradients, with a second loss on the logits or without."""
    config = tiny_config("default")
    torch.manual_seed(0)
    layer = XLMPredLayer(config)
    hidden = torch.randn(3, 11, config.emb_dim, requires_grad=True)
    labels = torch.randint(0, config.vocab_size, (3, 11))
    labels[torch.rand(3, 11) >= labelled] = -100
    inputs = (hidden, layer.proj.weight, layer.proj.bias)

    def total(logits, loss):
        return loss + (logits.square().mean() if logits_used else 0.0)

    logits = torch.nn.functional.linear(hidden, layer.proj.weight, layer.proj.bias)
    expected = torch.nn.functional.cross_entropy(logits.view(-1, config.vocab_size), labels.view(-1))
    expected_grads = torch.autograd.grad(total(logits, expected), inputs)
    actual_logits, actual = layer(hidden, labels)
    actual_grads = torch.autograd.grad(total(actual_logits, actual), inputs)
    assert torch.equal(actual_logits, logits)
    if labelled:
        assert abs(expected.item() - actual.item()) <= 1e-6
    else:
        assert torch.isnan(expected) and torch.isnan(actual)
    for expected_grad, actual_grad in zip(expected_grads, actual_grads):
        assert max_diff(expected_grad, actual_grad) <= 1e-6  # the two gradients are summed in another order


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("variant", ["default", "causal"])
def test_fully_masked_row_gives_no_nan(variant, implementation, dtype):
    config = tiny_config(variant)
    torch.manual_seed(0)
    model = ours.XLMWithLMHeadModel(config).eval().to(dtype)
    model.set_attn_implementation(implementation)
    inputs = torch_inputs(config)
    mask = inputs["attention_mask"].clone()
    mask[1] = 0  # nothing to attend in row 1
    with torch.no_grad():
        out = model(inputs["input_ids"], attention_mask=mask, output_hidden_states=True,
                    output_attentions=implementation == "eager")
        alone = model(inputs["input_ids"][[0, 2]], attention_mask=mask[[0, 2]])
    for tensor in (out.logits, *out.hidden_states, *(out.attentions or ())):
        assert not torch.isnan(tensor).any() and not torch.isinf(tensor).any()
    assert torch.all(out.hidden_states[-1][1] == 0)
    tolerance = TOLERANCE if dtype == torch.float32 else 5e-2
    assert max_diff(out.logits[[0, 2]].float(), alone.logits.float()) <= tolerance  # rows stay independent


@pytest.mark.parametrize("variant", ["multilang", "causal"])
def test_torch_compile(variant):
    """The base model compiles as one graph (no breaks: validation runs eagerly only) and trains."""
    _, model = model_pair(variant, "XLMModel")
    kwargs = kwargs_for(model.config, "attention_mask")
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        expected = model(**kwargs)
        actual = compiled(**kwargs)
    assert isinstance(actual, ours.BaseModelOutput)
    assert max_diff(expected.last_hidden_state, actual.last_hidden_state) <= TOLERANCE
    compiled(**kwargs).last_hidden_state.sum().backward()
    assert model.attentions[0].q_lin.weight.grad is not None
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("variant", ["multilang", "causal"])
def test_torch_jit_trace_keeps_the_padding_mask(variant):
    """A model traced on an unpadded batch still masks the padding of another batch (the eager path
    drops an all-ones mask after reading its values, which a trace would freeze)."""
    _, model = model_pair(variant, "XLMModel")
    ids = torch_inputs(model.config, pad=False)["input_ids"]
    padded = torch_inputs(model.config)["attention_mask"]
    assert (padded == 0).any()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are frozen, as intended
        traced = torch.jit.trace(model, (ids, torch.ones_like(ids)), strict=False)
        for mask in (torch.ones_like(ids), padded):
            expected = model(ids, attention_mask=mask).last_hidden_state
            assert max_diff(traced(ids, mask)["last_hidden_state"], expected) <= TOLERANCE


@pytest.mark.parametrize("return_logits", [True, False])
def test_lm_loss_is_float32_under_bf16_autocast(return_logits):
    """Under CPU bfloat16 autocast the LM loss is taken in float32, as F.cross_entropy does there (and
    transformers returns), not in bfloat16."""
    torch.manual_seed(0)
    lm = ours.XLMWithLMHeadModel(tiny_config("multilang")).eval()
    ids = torch_inputs(lm.config)["input_ids"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lm(ids, labels=ids, return_logits=return_logits)
        logits = lm(ids).logits
    expected = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
    assert out.loss.dtype == torch.float32
    assert abs(out.loss.item() - expected.item()) < 1e-5
