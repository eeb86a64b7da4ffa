"""resize_token_embeddings of the Keras models: the PyTorch twin's sizes and rules, the old rows
kept, new rows at the old mean, outputs equal to a PyTorch model of the new size on the same
weights, traced graphs rebuilt, training and saving after the resize."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras  # noqa: E402
from tf_helpers import TOL, hf_torch_model, to_np, torch_state  # noqa: E402
from xlm_testing import make_inputs, tiny_config  # noqa: E402
from xlm.config import XLMConfig  # noqa: E402
import xlm.torch_backend as pt  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES, TFXLMModel, TFXLMWithLMHeadModel  # noqa: E402

pytestmark = pytest.mark.keras_backends
DROPPED = r"new_num_tokens=3 would drop the config.s special ids unk_index=3, mask_index=5: keep at least 6 rows"


def keras_and_torch(architecture: str, config):
    """A Keras model holding transformers' random weights, and the same PyTorch model of ours."""
    state = torch_state(hf_torch_model(config, architecture))
    model = MODEL_CLASSES[architecture](config)
    model.load_state_dict(state)
    twin = getattr(pt, architecture)(XLMConfig.from_dict(config.to_dict())).eval()
    twin.load_weights(state)
    return model, twin


def with_new_words(config, size: int) -> dict:
    inputs = make_inputs(config)
    inputs["input_ids"][0, :3] = [size - 1, size - 2, 20]
    return inputs


@pytest.mark.parametrize("new_num_tokens, pad_to_multiple_of, size", [(130, None, 130), (90, None, 90), (101, 64, 128)])
@pytest.mark.parametrize("architecture", ["XLMWithLMHeadModel", "XLMForTokenClassification"])
def test_resize_keeps_rows_and_matches_the_pytorch_twin(architecture, new_num_tokens, pad_to_multiple_of, size):
    config = tiny_config()
    model, twin = keras_and_torch(architecture, config)
    old = model.get_input_embeddings().weight.numpy()
    inputs = make_inputs(config)
    model(inputs), model(inputs)  # the second call traces the inference graph, which must be rebuilt
    variable = model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of=pad_to_multiple_of)
    twin.resize_token_embeddings(new_num_tokens, pad_to_multiple_of=pad_to_multiple_of)
    assert variable is model.get_input_embeddings().weight
    assert model.config.vocab_size == twin.config.vocab_size == size and variable.shape == (size, config.emb_dim)
    table = variable.numpy()
    kept = min(size, len(old))
    np.testing.assert_array_equal(table[:kept], old[:kept])
    if size > len(old):  # 1e-9 × the covariance: the new rows sit at the old rows' mean
        np.testing.assert_allclose(table[len(old):], np.broadcast_to(old.mean(0), table[len(old):].shape), atol=1e-4)
    state = model.state_dict()
    assert len(model.weights) == len(twin.state_dict()) - (architecture == "XLMWithLMHeadModel")  # tied: one less
    if architecture == "XLMWithLMHeadModel":
        bias = state["pred_layer.proj.bias"]
        np.testing.assert_array_equal(bias, twin.pred_layer.proj.bias.detach().numpy())  # cut, or zeros for new words
    twin.load_weights(state)  # the Keras rows into the PyTorch twin: the same numbers
    inputs = with_new_words(model.config, size)
    for _ in range(2):  # op by op, then through the inference graph
        ours = to_np(model(inputs).logits)
        with torch.no_grad():
            theirs = twin(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
        np.testing.assert_allclose(ours, theirs, atol=TOL)


def test_fit_and_save_after_resize(tmp_path):
    config = tiny_config(n_layers=1)
    model = TFXLMWithLMHeadModel(config)
    model.resize_token_embeddings(config.vocab_size + 30)
    assert model.pred_layer.bias.shape == (model.config.vocab_size,)
    inputs = with_new_words(model.config, model.config.vocab_size)
    ids = inputs["input_ids"]
    data = {"input_ids": np.tile(ids, (4, 1)), "labels": np.tile(ids, (4, 1))}
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = model.fit(data, batch_size=3, epochs=1, verbose=0, shuffle=False).history["loss"]
    assert np.isfinite(losses).all()
    # the optimizer now holds state for this table: a second resize must wait for a new compile
    with pytest.raises(ValueError, match="optimizer already holds state for the 129-row word embeddings"):
        model.resize_token_embeddings(140)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(to_np(again(inputs).logits), to_np(model(inputs).logits))
    model.save_pretrained(tmp_path / "dir", safe_serialization=True)  # tf_model.h5 and model.safetensors
    theirs = transformers.XLMWithLMHeadModel.from_pretrained(tmp_path / "dir").eval()
    with torch.no_grad():
        expected = theirs(**{k: torch.from_numpy(inputs[k]) for k in ("input_ids", "attention_mask")}).logits.numpy()
    ours = to_np(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits)
    np.testing.assert_allclose(ours, expected, atol=TOL)
    model.save_pretrained(tmp_path / "h5")
    theirs_tf = transformers.TFXLMWithLMHeadModel.from_pretrained(tmp_path / "h5")
    import tensorflow as tf  # transformers' TF model (tf-keras), whatever backend Keras 3 runs on

    tf_inputs = {k: tf.constant(inputs[k]) for k in ("input_ids", "attention_mask")}
    np.testing.assert_allclose(ours, to_np(theirs_tf(tf_inputs).logits), atol=TOL)


def test_init_draws_and_refusals():
    keras.utils.set_random_seed(0)
    config = tiny_config()
    model = TFXLMModel(config)
    old = model.get_input_embeddings().weight.numpy()
    model.resize_token_embeddings(len(old) + 300, mean_resizing=False)
    drawn = model.get_input_embeddings().weight.numpy()[len(old):]
    assert abs(drawn.std() - config.embed_init_std) <= 0.1 * config.embed_init_std
    row = np.linspace(-1, 1, config.emb_dim, dtype=np.float32)
    table = np.broadcast_to(row, (model.config.vocab_size, config.emb_dim))
    model.get_input_embeddings().weight.assign(table)  # equal rows: no positive-definite covariance
    model.resize_token_embeddings(model.config.vocab_size + 5)
    np.testing.assert_array_equal(model.get_input_embeddings().weight.numpy()[-5:],
                                  np.broadcast_to(table.mean(axis=0), (5, config.emb_dim)))  # the mean
    assert model.resize_token_embeddings() is model.get_input_embeddings().weight
    with pytest.raises(ValueError, match=DROPPED):
        model.resize_token_embeddings(3)
    asm = MODEL_CLASSES["XLMWithLMHeadModel"](tiny_config("asm"))
    with pytest.raises(ValueError, match="adaptive-softmax output"):
        asm.resize_token_embeddings(asm.config.vocab_size + 1)


@pytest.mark.parametrize("rows", [130, 90])
def test_set_input_embeddings_matches_the_pytorch_twin(rows):
    config = tiny_config()
    model, twin = keras_and_torch("XLMWithLMHeadModel", config)
    inputs = make_inputs(config)
    model(inputs), model(inputs)  # traces the inference graph, which must be rebuilt
    table = np.random.default_rng(3).normal(0, 0.1, (rows, config.emb_dim)).astype(np.float32)
    model.set_input_embeddings(keras.ops.convert_to_tensor(table))
    twin.set_input_embeddings(torch.nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=False))
    assert model.config.vocab_size == twin.config.vocab_size == rows
    np.testing.assert_array_equal(model.get_input_embeddings().weight.numpy(), table)
    np.testing.assert_array_equal(model.state_dict()["pred_layer.proj.bias"],
                                  twin.pred_layer.proj.bias.detach().numpy())  # cut, or zeros for new words
    inputs = with_new_words(model.config, rows)
    labels = inputs["input_ids"]
    for _ in range(2):  # op by op, then through the inference graph
        ours = model(inputs, labels=labels)
        with torch.no_grad():
            theirs = twin(**{k: torch.from_numpy(v) for k, v in inputs.items()}, labels=torch.from_numpy(labels))
        assert ours.logits.shape[-1] == rows
        np.testing.assert_allclose(to_np(ours.logits), theirs.logits.numpy(), atol=TOL)
        np.testing.assert_allclose(float(ours.loss), float(theirs.loss), atol=TOL)


def test_set_input_embeddings_same_shape_keeps_the_variable_and_checks_shapes():
    config = tiny_config()
    model, other = TFXLMWithLMHeadModel(config), TFXLMWithLMHeadModel(config)
    inputs = make_inputs(config)
    model(inputs), other(inputs)
    variable = model.get_input_embeddings().weight
    model.set_input_embeddings(other.get_input_embeddings())  # a layer: its table is copied
    assert model.get_input_embeddings().weight is variable
    np.testing.assert_array_equal(variable.numpy(), other.get_input_embeddings().weight.numpy())
    with pytest.raises(ValueError, match=r"\(rows, emb_dim=32\) word-embedding table, got shape \(100, 16\)"):
        model.set_input_embeddings(np.zeros((100, 16), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(3200,\)"):
        model.set_input_embeddings(np.zeros(3200, np.float32))
    with pytest.raises(ValueError, match="a 3-row table would drop the config.s special ids unk_index=3, mask_index=5"):
        model.set_input_embeddings(np.zeros((3, config.emb_dim), np.float32))
    asm = MODEL_CLASSES["XLMWithLMHeadModel"](tiny_config("asm"))
    with pytest.raises(ValueError, match="set_input_embeddings can't resize an adaptive-softmax output"):
        asm.set_input_embeddings(np.zeros((asm.config.vocab_size + 1, config.emb_dim), np.float32))
    ids = inputs["input_ids"]
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit({"input_ids": ids, "labels": ids}, batch_size=2, verbose=0)
    model.set_input_embeddings(np.zeros((config.vocab_size, config.emb_dim), np.float32))  # same shape: fine
    with pytest.raises(ValueError, match="optimizer already holds state"):
        model.set_input_embeddings(np.zeros((config.vocab_size + 1, config.emb_dim), np.float32))
