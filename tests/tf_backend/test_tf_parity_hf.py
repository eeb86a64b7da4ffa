"""Every Keras class × config variant × padding mode against transformers 4.57.6 on the same weights:
its PyTorch classes (outputs, hidden states, attentions, losses) and, where they exist, its TF classes;
on every Keras backend."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tf_helpers import (  # noqa: E402
    ARCHITECTURES,
    PADDING_MODES,
    arch_inputs,
    arch_labels,
    assert_close,
    compare,
    hf_tf_model,
    hf_tf_supports,
    hf_torch_model,
    hf_torch_outputs,
    to_numpy,
    torch_state,
)
from xlm_testing import CONFIG_VARIANTS, tiny_config  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES  # noqa: E402

FLAGS = dict(output_hidden_states=True, output_attentions=True)
QA = ("XLMForQuestionAnswering",)


@pytest.fixture(scope="module")
def torch_one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.keras_backends
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
def test_matches_transformers_pytorch(variant, architecture, torch_one_thread):
    config = tiny_config(variant)
    reference = hf_torch_model(config, architecture)
    model = MODEL_CLASSES[architecture](config)
    model.load_state_dict(torch_state(reference))
    worst = {}
    for mode in PADDING_MODES:
        if architecture == "XLMForMultipleChoice" and mode == "lengths":
            continue
        inputs = arch_inputs(config, architecture, mode)
        labels = arch_labels(config, architecture, inputs)
        if architecture in QA:
            # labels switch the beam head to its loss: check both paths
            ours = to_numpy(model(inputs, **FLAGS))
            expected = hf_torch_outputs(reference, config, architecture, inputs)
            diffs = compare(ours, expected, padded=True)
            diffs["loss"] = compare(
                to_numpy(model(inputs, **labels)), hf_torch_outputs(reference, config, architecture, inputs, labels),
                padded=True, keys=["loss"],
            )["loss"]
        else:
            ours = to_numpy(model(inputs, **labels, **FLAGS))
            expected = hf_torch_outputs(reference, config, architecture, inputs, labels)
            assert set(ours) == set(expected), (set(ours), set(expected))
            diffs = compare(ours, expected, padded=True)
        assert_close(diffs, f"{variant}/{architecture}/{mode}")
        for key, value in diffs.items():
            worst[key] = max(worst.get(key, 0.0), value)
    assert "last_hidden_state" in worst or "hidden_states" in worst


@pytest.mark.keras_backends
@pytest.mark.parametrize("variant", ["default", "causal", "multilang", "asm"])
def test_beam_head_indices_equal_on_unpadded_inputs(variant, torch_one_thread):
    config = tiny_config(variant)
    reference = hf_torch_model(config, "XLMForQuestionAnswering")
    model = MODEL_CLASSES["XLMForQuestionAnswering"](config)
    model.load_state_dict(torch_state(reference))
    inputs = arch_inputs(config, "XLMForQuestionAnswering", pad=False)
    p_mask = np.zeros(inputs["input_ids"].shape, dtype=np.float32)
    p_mask[:, :2] = 1.0
    for extra in ({}, {"p_mask": p_mask}):
        ours = to_numpy(model(inputs, **extra))
        expected = hf_torch_outputs(reference, config, "XLMForQuestionAnswering", inputs, extra)
        assert_close(compare(ours, expected, padded=False), f"{variant} beam {sorted(extra)}")
        for key in ("start_top_index", "end_top_index"):
            np.testing.assert_array_equal(ours[key], expected[key])
    assert not np.isin(ours["start_top_index"], [0, 1]).any()  # p_mask excluded the first two tokens


@pytest.mark.keras_backends
@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "XLMForQuestionAnswering"])
@pytest.mark.parametrize("variant", ["default", "multilang", "multilang_no_lang_emb", "causal", "relu"])
def test_matches_transformers_tensorflow(variant, architecture):
    """transformers' TF classes run on tf-keras (Keras 2), whatever backend Keras 3 runs ours on."""
    tf = pytest.importorskip("tensorflow")

    config = tiny_config(variant)
    model = MODEL_CLASSES[architecture](config)
    state = model.state_dict()
    reference = hf_tf_model(config, architecture, state)
    # padding from a mask (lengths for causal models, whose mask transformers' TF rejects) and from pad tokens
    masked = "lengths" if config.causal else "attention_mask"
    for mode in (masked, "pad_index"):
        inputs = arch_inputs(config, architecture, mode)
        assert hf_tf_supports(config, architecture, mode)
        ours = to_numpy(model(inputs, **FLAGS))
        expected = to_numpy(reference({k: tf.constant(v) for k, v in inputs.items()}, **FLAGS))
        assert_close(compare(ours, expected, padded=True), f"{variant}/{architecture}/{mode} vs transformers TF")


@pytest.mark.tf_only
def test_the_eager_and_the_graph_path_agree():
    """Repeated eager inference runs as a traced graph (graph_inference): same numbers as op by op."""
    config = tiny_config("multilang")
    model = MODEL_CLASSES["XLMWithLMHeadModel"](config)
    inputs = arch_inputs(config, "XLMWithLMHeadModel")
    first = to_numpy(model(inputs, **FLAGS))  # op by op (first call of this signature)
    assert model._inference_graph is None
    second = to_numpy(model(inputs, **FLAGS))  # traced
    assert model._inference_graph is not None
    # Grappler fuses and reorders some float ops in the graph: last-bit differences (one ulp of
    # a log-probability near 10 is 9.5e-7), so the project's float32 bound, not a tighter one.
    assert_close(compare(first, second, padded=True), "graph vs op by op")
    model.graph_inference = False
    third = to_numpy(model(inputs, **FLAGS))
    assert_close(compare(first, third, padded=True), "op by op again", tol=0.0)
