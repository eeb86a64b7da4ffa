"""Every PyTorch class × every config variant against transformers 4.57.6 on the same weights and inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_parity import (
    ARCHITECTURES,
    NUM_CHOICES,
    TOLERANCE,
    assert_outputs_close,
    max_diff,
    model_pair,
    torch_inputs,
)
from xlm_testing import CONFIG_VARIANTS

PADDINGS = ("attention_mask", "lengths", "pad_index")
CASES = [
    (variant, architecture)
    for variant in CONFIG_VARIANTS
    for architecture in ARCHITECTURES
    # transformers' adaptive-softmax LM head crashes on (batch, seq, dim): see test_asm_lm_head
    if not (variant == "asm" and architecture == "XLMWithLMHeadModel")
]
BEAM_OUTPUTS = ("start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index")


def model_kwargs(config, architecture: str, padding: str, pad: bool = True, seed: int = 0) -> dict:
    """Inputs with padding given by `padding`, language ids, token types and restarted positions."""
    batch = 4 if architecture == "XLMForMultipleChoice" else 3
    inputs = torch_inputs(config, batch=batch, seed=seed, pad=pad)
    kwargs = {key: inputs[key] for key in ("input_ids", "langs", "token_type_ids", "position_ids")}
    if padding == "attention_mask":
        kwargs["attention_mask"] = inputs["attention_mask"]
    elif padding == "lengths":
        kwargs["lengths"] = inputs["lengths"]
    if architecture == "XLMForMultipleChoice":
        kwargs = {k: v.view(-1, NUM_CHOICES, v.shape[-1]) if k != "lengths" else v for k, v in kwargs.items()}
    return kwargs


def make_labels(config, architecture: str, kwargs: dict, seed: int = 0) -> dict:
    """Labels of each head, with -100 (ignored) entries and out-of-range QA positions."""
    rng = np.random.default_rng(seed)
    ids = kwargs["input_ids"]
    batch, slen = ids.shape[0], ids.shape[-1]
    if architecture == "XLMWithLMHeadModel":
        labels = ids.clone()
        labels[torch.from_numpy(rng.random(ids.shape) < 0.3)] = -100
        return {"labels": labels}
    if architecture == "XLMForSequenceClassification":
        return {"labels": torch.from_numpy(rng.integers(0, config.num_labels, batch))}
    if architecture == "XLMForMultipleChoice":
        return {"labels": torch.from_numpy(rng.integers(0, NUM_CHOICES, batch))}
    if architecture == "XLMForTokenClassification":
        labels = torch.from_numpy(rng.integers(0, config.num_labels, (batch, slen)))
        labels[torch.from_numpy(rng.random((batch, slen)) < 0.3)] = -100
        return {"labels": labels}
    if architecture == "XLMForQuestionAnsweringSimple":
        # beyond the sequence (ignored), negative (clamped to 0), at the end (ignored)
        return {
            "start_positions": torch.tensor([2, slen + 5, -3]),
            "end_positions": torch.tensor([4, 3, slen]),
        }
    if architecture == "XLMForQuestionAnswering":
        return {
            "start_positions": torch.tensor([1, 2, 0]),
            "end_positions": torch.tensor([3, 4, 5]),
            "cls_index": torch.tensor([0, 0, 1]),
            "is_impossible": torch.tensor([0.0, 1.0, 0.0]),
            "p_mask": (kwargs["input_ids"] == config.pad_index).float(),
        }
    return {}


def assert_beam_close(expected, actual, padded: bool) -> None:
    """The SQuAD head's beam outputs: indices only without padding (padded positions tie exactly),
    sorted probabilities everywhere."""
    for key in expected.keys():
        if key.endswith("_index"):
            if not padded:
                assert torch.equal(expected[key], actual[key]), key
        elif key.endswith("_log_probs"):
            diff = max_diff(expected[key].sort(dim=-1).values, actual[key].sort(dim=-1).values)
            assert diff <= TOLERANCE, f"{key}: {diff}"
    assert_outputs_close(expected, actual, skip=BEAM_OUTPUTS)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(("variant", "architecture"), CASES)
def test_matches_transformers(variant, architecture, padding):
    reference, model = model_pair(variant, architecture)
    config = model.config
    kwargs = model_kwargs(config, architecture, padding)
    labels = make_labels(config, architecture, kwargs)
    with torch.no_grad():
        # fused attention, no labels
        expected, actual = reference(**kwargs), model(**kwargs)
        if architecture == "XLMForQuestionAnswering":
            assert_beam_close(expected, actual, padded=True)
        else:
            assert_outputs_close(expected, actual)

        # explicit attention (weights returned), labels, every hidden state
        full = dict(kwargs, **labels, output_attentions=True, output_hidden_states=True)
        expected, actual = reference(**full), model(**full)
        assert len(actual.attentions) == len(actual.hidden_states) - 1 == config.n_layers
        assert "loss" in actual.keys() or architecture == "XLMModel"
        assert_outputs_close(expected, actual)

        # tuples
        expected_tuple = reference(**full, return_dict=False)
        actual_tuple = model(**full, return_dict=False)
    assert isinstance(actual_tuple, tuple)
    assert len(actual_tuple) == len(expected_tuple) == len(actual.to_tuple())
    for exp, act, from_dict in zip(expected_tuple, actual_tuple, actual.to_tuple()):
        assert max_diff(exp, act) <= TOLERANCE
        assert max_diff(act, from_dict) == 0.0


@pytest.mark.parametrize("padding", PADDINGS)
def test_asm_lm_head(padding):
    """transformers' asm head crashes on 3-D input: compare with its adaptive softmax applied to the
    flattened hidden states of its encoder."""
    reference, model = model_pair("asm", "XLMWithLMHeadModel")
    config = model.config
    kwargs = model_kwargs(config, "XLMWithLMHeadModel", padding)
    labels = make_labels(config, "XLMWithLMHeadModel", kwargs)["labels"]
    with torch.no_grad():
        encoded = reference.transformer(**kwargs, output_hidden_states=True).hidden_states
        hidden = encoded[-1]
        flat = hidden.reshape(-1, config.emb_dim)
        expected_logits = reference.pred_layer.proj.log_prob(flat).view(*hidden.shape[:2], config.vocab_size)
        keep = labels.reshape(-1) != -100
        expected_loss = reference.pred_layer.proj(flat[keep], labels.reshape(-1)[keep]).loss
        out = model(**kwargs, labels=labels, output_hidden_states=True)
    assert out.logits.shape == (*kwargs["input_ids"].shape, config.vocab_size)
    assert max_diff(out.logits, expected_logits) <= TOLERANCE
    assert max_diff(out.loss, expected_loss) <= TOLERANCE
    assert max_diff(out.hidden_states, encoded) <= TOLERANCE
    # the loss is the mean negative log-probability of the labels that are not -100
    picked = out.logits.reshape(-1, config.vocab_size)[keep].gather(1, labels.reshape(-1)[keep, None])
    assert abs(out.loss.item() + picked.mean().item()) <= TOLERANCE
    # no spurious tied weight on the adaptive module
    assert "pred_layer.proj.weight" not in model.state_dict()
    assert "pred_layer.proj.weight" in reference.state_dict()


@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
def test_beam_indices_without_padding(variant):
    reference, model = model_pair(variant, "XLMForQuestionAnswering")
    kwargs = model_kwargs(model.config, "XLMForQuestionAnswering", "attention_mask", pad=False)
    with torch.no_grad():
        expected, actual = reference(**kwargs), model(**kwargs)
    assert_beam_close(expected, actual, padded=False)
    assert_outputs_close(expected, actual)


@pytest.mark.parametrize("variant", ["default", "multilang", "causal"])
@pytest.mark.parametrize("architecture", ["XLMModel", "XLMWithLMHeadModel"])
@pytest.mark.parametrize("per_layer", [False, True], ids=["heads", "layers_x_heads"])
def test_head_mask(variant, architecture, per_layer):
    reference, model = model_pair(variant, architecture)
    config = model.config
    kwargs = model_kwargs(config, architecture, "attention_mask")
    shape = (config.n_layers, config.n_heads) if per_layer else (config.n_heads,)
    head_mask = torch.from_numpy(np.random.default_rng(3).random(shape)).float()
    head_mask[..., 0] = 0.0
    with torch.no_grad():
        expected = reference(**kwargs, head_mask=head_mask, output_attentions=True)
        actual = model(**kwargs, head_mask=head_mask, output_attentions=True)
        plain = model(**kwargs)
    assert_outputs_close(expected, actual)
    assert (actual.attentions[0][:, 0] == 0).all()
    assert max_diff(actual[0], plain[0]) > 1e-3  # the mask does change the result


@pytest.mark.parametrize("variant", ["default", "multilang", "causal", "sinusoidal"])
@pytest.mark.parametrize("padding", ["attention_mask", "lengths", None])
def test_inputs_embeds(variant, padding):
    reference, model = model_pair(variant, "XLMWithLMHeadModel")
    kwargs = model_kwargs(model.config, "XLMWithLMHeadModel", padding or "none")
    shape = (*kwargs.pop("input_ids").shape, model.config.emb_dim)
    embeds = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(inputs_embeds=embeds, **kwargs, output_hidden_states=True)
        actual = model(inputs_embeds=embeds, **kwargs, output_hidden_states=True)
    assert_outputs_close(expected, actual)


@pytest.mark.parametrize(
    ("overrides", "label_kind"),
    [((("num_labels", 1),), "regression"), ((("num_labels", 3),), "multi_label")],
)
def test_classification_problem_types(overrides, label_kind):
    reference, model = model_pair("default", "XLMForSequenceClassification", overrides)
    kwargs = model_kwargs(model.config, "XLMForSequenceClassification", "attention_mask")
    rng = np.random.default_rng(5)
    if label_kind == "regression":
        labels = torch.from_numpy(rng.normal(size=3)).float()
    else:
        labels = torch.from_numpy(rng.integers(0, 2, (3, 3))).float()
    with torch.no_grad():
        expected, actual = reference(**kwargs, labels=labels), model(**kwargs, labels=labels)
    assert_outputs_close(expected, actual)
    assert model.config.problem_type == reference.config.problem_type  # written by the first loss, as transformers does


def test_squad_loss_ignores_out_of_range_positions():
    """transformers' SQuAD head crashes on positions outside the input; ours clamps them to
    [0, seq] and ignores those equal to seq, as the simple QA head does."""
    _, model = model_pair("default", "XLMForQuestionAnswering")
    kwargs = model_kwargs(model.config, "XLMForQuestionAnswering", "attention_mask")
    slen = kwargs["input_ids"].shape[1]
    starts, ends = torch.tensor([1, slen + 4, 2]), torch.tensor([3, 2, slen])
    with torch.no_grad():
        loss = model(**kwargs, start_positions=starts, end_positions=ends).loss
        hidden = model.transformer(**kwargs)[0]
        start_logits = model.qa_outputs.start_logits(hidden)
        end_logits = model.qa_outputs.end_logits(hidden, start_positions=starts.clamp(max=slen - 1))
    # starts count for examples 0 and 2, ends for examples 0 and 1
    expected = (
        F.cross_entropy(start_logits[[0, 2]], starts[[0, 2]]) + F.cross_entropy(end_logits[[0, 1]], ends[[0, 1]])
    ) / 2
    assert torch.isfinite(loss)
    assert abs(loss.item() - expected.item()) <= TOLERANCE


def test_load_state_dict_strict_equals_table_loading():
    """transformers' state_dict loads with nn.Module.load_state_dict too (same names and shapes)."""
    for architecture in ARCHITECTURES:
        reference, model = model_pair("multilang", architecture)
        fresh = type(model)(model.config).eval()
        result = fresh.load_state_dict(reference.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        kwargs = model_kwargs(model.config, architecture, "attention_mask")
        with torch.no_grad():
            assert_outputs_close(model(**kwargs), fresh(**kwargs), tolerance=0.0)


def test_cache_matches_transformers():
    """Incremental decoding: the second call with a cache equals transformers' with its cache."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    reference, model = model_pair("causal", "XLMWithLMHeadModel")
    ids = torch_inputs(model.config, pad=False)["input_ids"]
    langs = torch.ones_like(ids)
    hf_cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    cache: dict = {}
    with torch.no_grad():
        first_expected = reference(ids[:, :6], langs=langs[:, :6], cache=hf_cache)
        first_actual = model(ids[:, :6], langs=langs[:, :6], cache=cache)
        second_expected = reference(ids, langs=langs, cache=hf_cache)
        second_actual = model(ids, langs=langs, cache=cache)
    assert cache["slen"] == ids.shape[1]
    assert second_actual.logits.shape[1] == ids.shape[1] - 6
    assert_outputs_close(first_expected, first_actual)
    assert_outputs_close(second_expected, second_actual)
