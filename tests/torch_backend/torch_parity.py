"""Helpers of the PyTorch-stack tests: pairs of (transformers, ours) models with equal weights, comparisons."""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import xlm.torch_backend as ours  # noqa: E402
from xlm_testing import make_inputs, tiny_config, transformers_config  # noqa: E402

ARCHITECTURES = (
    "XLMModel",
    "XLMWithLMHeadModel",
    "XLMForSequenceClassification",
    "XLMForMultipleChoice",
    "XLMForTokenClassification",
    "XLMForQuestionAnsweringSimple",
    "XLMForQuestionAnswering",
)
TOLERANCE = 1e-5
NUM_CHOICES = 2


def randomize_(model, seed: int, std: float = 0.2) -> None:
    """Draw every trainable parameter (LayerNorm and biases included) from N(0, std)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


@functools.lru_cache(maxsize=None)
def model_pair(variant: str, architecture: str, overrides: tuple = ()):
    """(transformers model, our model) of one class and config variant, with the same random weights."""
    config = tiny_config(variant, **dict(overrides))
    torch.manual_seed(0)
    reference = getattr(transformers, architecture)(transformers_config(config)).eval()
    randomize_(reference, seed=1)
    model = getattr(ours, architecture)(config).eval()
    model.load_weights(reference.state_dict())
    return reference, model


def torch_inputs(config, batch: int = 3, seq_len: int = 11, seed: int = 0, pad: bool = True) -> dict:
    """make_inputs() as torch tensors."""
    return {k: torch.from_numpy(v) for k, v in make_inputs(config, batch, seq_len, seed, pad).items()}


def max_diff(a, b) -> float:
    """Largest absolute difference between two tensors (or nested tuples of tensors)."""
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        return max((max_diff(x, y) for x, y in zip(a, b)), default=0.0)
    assert a.shape == b.shape, (a.shape, b.shape)
    if not a.is_floating_point():
        return float((a != b).any())  # indices: any mismatch counts as 1
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_outputs_close(expected, actual, tolerance: float = TOLERANCE, skip: tuple = ()) -> dict:
    """Every field of `expected` equals `actual`'s within tolerance; returns the max diff per field."""
    assert list(expected.keys()) == list(actual.keys()), (list(expected.keys()), list(actual.keys()))
    diffs = {}
    for key in expected.keys():
        if key in skip:
            continue
        diffs[key] = max_diff(expected[key], actual[key])
        assert diffs[key] <= tolerance, f"{key}: max abs diff {diffs[key]:.3g} > {tolerance}"
    return diffs
