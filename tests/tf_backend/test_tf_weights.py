"""The Keras variables against the weight table: names, shapes, trainability, tying, initialisation,
and the state-dict round trip with its error messages."""

import numpy as np
import pytest


from tf_helpers import arch_inputs, to_np  # noqa: E402
from xlm_testing import CONFIG_VARIANTS, tiny_config  # noqa: E402
from xlm.modeling_utils import sinusoidal_table  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES, TFXLMModel, TFXLMWithLMHeadModel, keras_weights  # noqa: E402
from xlm.weights import ARCHITECTURES, WeightMismatchError, weight_specs  # noqa: E402


pytestmark = pytest.mark.keras_backends


@pytest.mark.parametrize("variant", list(CONFIG_VARIANTS))
def test_keras_names_and_shapes_are_the_tables(variant):
    config = tiny_config(variant)
    for architecture in ARCHITECTURES:
        model = MODEL_CLASSES[architecture](config)
        weights = keras_weights(model)
        specs = [s for s in weight_specs(config, architecture) if s.keras_name is not None]
        assert {name: tuple(v.shape) for name, v in weights.items()} == {s.keras_name: s.keras_shape for s in specs}
        for spec in specs:
            assert weights[spec.keras_name].trainable == spec.trainable, spec.keras_name
        # nothing else is a weight: dropout seeds are state, not weights
        assert len(model.weights) == len(specs)


def test_keras_weights_ignores_where_a_layer_was_built():
    """Names come from the layer tree, not from `variable.path` (which depends on the build scope)."""
    config = tiny_config()
    model = TFXLMModel(config, name="some_other_name")
    assert "transformer/attentions_1/out_lin/kernel" in keras_weights(model)
    assert all(not name.startswith("some_other_name") for name in keras_weights(model))


def test_output_embeddings_are_tied():
    config = tiny_config()
    model = TFXLMWithLMHeadModel(config)
    names = keras_weights(model)
    assert "pred_layer_proj/bias" in names and not any(n.startswith("pred_layer_proj/") and n != "pred_layer_proj/bias" for n in names)
    inputs = arch_inputs(config, "XLMWithLMHeadModel")
    model.graph_inference = False
    before = to_np(model(inputs).logits)
    embeddings = names["transformer/embeddings/weight"]
    hidden = to_np(model.transformer(**inputs).last_hidden_state)
    np.testing.assert_allclose(before, hidden @ embeddings.numpy().T + names["pred_layer_proj/bias"].numpy(), atol=1e-5)
    # one variable: changing the input table changes the output projection
    embeddings.assign(embeddings.numpy() * 2.0)
    after = to_np(model(inputs).logits)
    assert not np.allclose(before, after)
    grads_for = {id(v) for v in model.trainable_variables}
    assert id(embeddings) in grads_for and len(model.trainable_variables) == len(set(grads_for))


def test_initialisation_follows_xlm():
    config = tiny_config("sinusoidal", init_std=0.05)
    weights = keras_weights(TFXLMWithLMHeadModel(config))
    words = weights["transformer/embeddings/weight"].numpy()
    assert np.all(words[config.pad_index] == 0) and abs(words[config.pad_index + 1:].std() - config.embed_init_std) < 0.03
    positions = weights["transformer/position_embeddings/embeddings"]
    assert not positions.trainable
    np.testing.assert_array_equal(positions.numpy(), sinusoidal_table(config.max_position_embeddings, config.emb_dim))
    kernel = weights["transformer/ffns_0/lin1/kernel"].numpy()
    assert abs(kernel.std() - 0.05) < 0.01
    assert np.all(weights["transformer/ffns_0/lin1/bias"].numpy() == 0)
    assert np.all(weights["transformer/layer_norm1_0/gamma"].numpy() == 1)
    assert np.all(weights["pred_layer_proj/bias"].numpy() == 0)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_state_dict_round_trip(architecture):
    config = tiny_config("asm")
    source = MODEL_CLASSES[architecture](config)
    state = source.state_dict()
    assert set(state) == {s.torch_name for s in weight_specs(config, architecture) if s.tied_to is None}
    target = MODEL_CLASSES[architecture](config)
    target.load_state_dict(state)
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_load_errors_list_every_problem():
    config = tiny_config()
    model = TFXLMModel(config)
    state = model.state_dict()
    del state["attentions.0.q_lin.weight"]
    state["attentions.0.k_lin.weight"] = np.zeros((3, 3), np.float32)
    state["not_a_weight.bias"] = np.zeros(3, np.float32)
    with pytest.raises(WeightMismatchError) as info:
        model.load_state_dict(state, context="here")
    message = str(info.value)
    assert "attentions.0.q_lin.weight" in message  # missing
    assert "not_a_weight.bias" in message  # unexpected
    assert "attentions.0.k_lin.weight has shape [3, 3], the model needs [32, 32]" in message  # mis-shaped
    assert "(here)" in message


def test_base_checkpoint_into_a_head_warns_about_the_fresh_head():
    config = tiny_config()
    base = TFXLMModel(config)
    head = MODEL_CLASSES["XLMForSequenceClassification"](config)
    with pytest.warns(UserWarning, match="sequence_summary.summary.weight"):
        head.load_weights(base.state_dict())  # a mapping: the PyTorch stack's load_weights
    np.testing.assert_array_equal(
        keras_weights(head)["transformer/embeddings/weight"].numpy(), keras_weights(base)["transformer/embeddings/weight"].numpy()
    )
