"""Our Keras stack against our PyTorch stack: every class × config variant, with padding given by
an attention_mask, by lengths or by pad tokens, same weights and inputs; outputs, hidden states,
attentions and losses within 1e-5 (float32, CPU). On every Keras backend (test_keras_backends.py)."""

import numpy as np
import pytest

pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import xlm.tf_backend as keras_stack  # noqa: E402
import xlm.torch_backend as torch_stack  # noqa: E402
from xlm_testing import CONFIG_VARIANTS, make_inputs, tiny_config  # noqa: E402
from xlm.weights import ARCHITECTURES  # noqa: E402

pytestmark = pytest.mark.keras_backends
TOL = 1e-5
PADDINGS = ("attention_mask", "lengths", "pad_index")
FLAGS = dict(output_hidden_states=True, output_attentions=True, return_dict=True)
BEAM_VALUES = ("start_top_log_probs", "end_top_log_probs")
BEAM_INDICES = ("start_top_index", "end_top_index")


@pytest.fixture(scope="module", autouse=True)
def torch_one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def model_pair(variant: str, architecture: str):
    """(our PyTorch model, our Keras model) with the same random weights (biases and norms included)."""
    config = tiny_config(variant)
    torch.manual_seed(0)
    torch_model = torch_stack.MODEL_CLASSES[architecture](config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in torch_model.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    keras_model = keras_stack.MODEL_CLASSES[architecture](config)
    keras_model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    return config, torch_model, keras_model


def inputs_and_labels(config, architecture: str, padding: str, pad: bool = True) -> tuple[dict, dict]:
    inputs = make_inputs(config, pad=pad)
    lengths = inputs.pop("lengths")
    mask = inputs.pop("attention_mask")
    if padding == "attention_mask":
        inputs["attention_mask"] = mask
    elif padding == "lengths":
        inputs["lengths"] = lengths
    rng = np.random.default_rng(2)
    ids = inputs["input_ids"]
    batch, slen = ids.shape
    if architecture == "XLMForMultipleChoice":
        inputs = {k: np.stack([v, v[::-1]], axis=1) for k, v in inputs.items() if k != "lengths"}
        return inputs, {"labels": rng.integers(0, 2, batch)}
    if architecture == "XLMWithLMHeadModel":
        labels = np.where(rng.random(ids.shape) < 0.3, -100, ids)
        return inputs, {"labels": labels}
    if architecture == "XLMForSequenceClassification":
        return inputs, {"labels": rng.integers(0, config.num_labels, batch)}
    if architecture == "XLMForTokenClassification":
        return inputs, {"labels": np.where(rng.random(ids.shape) < 0.3, -100, rng.integers(0, 2, ids.shape))}
    if architecture in ("XLMForQuestionAnsweringSimple", "XLMForQuestionAnswering"):
        starts = rng.integers(0, slen, batch)
        starts[-1] = slen + 5  # outside the input: clamped and ignored by both stacks
        labels = {"start_positions": starts, "end_positions": np.minimum(starts + 1, slen - 1)}
        if architecture == "XLMForQuestionAnswering":
            labels.update(cls_index=np.zeros(batch, np.int64), is_impossible=rng.integers(0, 2, batch).astype(np.float32))
        return inputs, labels
    return inputs, {}


def as_numpy(outputs) -> dict:
    out = {}
    for key, value in outputs.items():
        if isinstance(value, tuple):
            out[key] = tuple(np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for v in value)
        else:
            out[key] = np.asarray(value.detach().numpy() if hasattr(value, "detach") else value)
    return out


def max_diff(a, b) -> float:
    if isinstance(a, tuple):
        assert len(a) == len(b)
        return max(max_diff(x, y) for x, y in zip(a, b))
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def run_both(torch_model, keras_model, inputs: dict, labels: dict) -> tuple[dict, dict]:
    with torch.no_grad():
        expected = torch_model(**{k: torch.from_numpy(np.asarray(v)) for k, v in {**inputs, **labels}.items()}, **FLAGS)
    return as_numpy(expected), as_numpy(keras_model(inputs, **labels, **FLAGS))


def paddings_for(variant: str, architecture: str) -> tuple[str, ...]:
    """Every padding mode for the encoder and the LM head; one per case for the other heads,
    rotating so that each head meets all three across the variants (the tests in tf_backend
    run every mode everywhere against transformers)."""
    if architecture in ("XLMModel", "XLMWithLMHeadModel"):
        return PADDINGS
    modes = [p for p in PADDINGS if not (architecture == "XLMForMultipleChoice" and p == "lengths")]
    index = list(CONFIG_VARIANTS).index(variant) + ARCHITECTURES.index(architecture)
    return (modes[index % len(modes)],)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
def test_keras_equals_pytorch(variant, architecture):
    config, torch_model, keras_model = model_pair(variant, architecture)
    for padding in paddings_for(variant, architecture):
        inputs, labels = inputs_and_labels(config, architecture, padding)
        calls = [labels]
        if architecture == "XLMForQuestionAnswering":
            calls = [{}, labels]  # beam outputs, then the loss
        for call_labels in calls:
            expected, ours = run_both(torch_model, keras_model, inputs, call_labels)
            assert list(ours) == list(expected), (list(ours), list(expected))
            for key in expected:
                if key in BEAM_INDICES:
                    continue  # ties among padded positions: indices compared on unpadded inputs below
                a, b = ours[key], expected[key]
                if key in BEAM_VALUES:
                    a, b = np.sort(a, axis=-1), np.sort(b, axis=-1)
                diff = max_diff(a, b)
                assert diff <= TOL, f"{variant}/{architecture}/{padding}/{key}: {diff:.3g}"


@pytest.mark.parametrize("variant", ["default", "causal", "asm"])
def test_beam_indices_equal_without_padding(variant):
    config, torch_model, keras_model = model_pair(variant, "XLMForQuestionAnswering")
    inputs, _ = inputs_and_labels(config, "XLMForQuestionAnswering", "pad_index", pad=False)
    expected, ours = run_both(torch_model, keras_model, inputs, {})
    for key in BEAM_INDICES:
        np.testing.assert_array_equal(ours[key], expected[key])
    assert max_diff(ours["end_top_log_probs"], expected["end_top_log_probs"]) <= TOL


def test_incremental_decoding_equals_pytorch():
    config, torch_model, keras_model = model_pair("causal", "XLMWithLMHeadModel")
    inputs = make_inputs(config, pad=False)
    ids, langs = inputs["input_ids"], inputs["langs"]
    torch_cache, keras_cache = {}, keras_stack.TFXLMCache()
    for end in (6, 7, 9, ids.shape[1]):
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(ids[:, :end]), langs=torch.from_numpy(langs[:, :end]), cache=torch_cache)
        ours = keras_model(ids[:, :end], langs=langs[:, :end], cache=keras_cache)
        assert keras_cache["slen"] == torch_cache["slen"] == end
        assert max_diff(as_numpy({"logits": ours.logits})["logits"], expected.logits.numpy()) <= TOL
