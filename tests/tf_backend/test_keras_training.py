"""Training the Keras models on every Keras backend: one SGD step of `fit` moves the weights as the PyTorch
twin's step does, with the model's own loss and with a compiled Keras loss (jit-compiled where the backend
compiles: JAX and TensorFlow's XLA); evaluate and predict; mixed bfloat16 without NaN; fused against
explicit attention; and data parallelism over two JAX devices against one."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from tf_helpers import arch_inputs, arch_labels, randomize_, to_np, to_numpy  # noqa: E402
from xlm_testing import make_inputs, tiny_config  # noqa: E402
import xlm.torch_backend as pt  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES  # noqa: E402

pytestmark = pytest.mark.keras_backends
BACKEND = keras.backend.backend()
#: keras-hub's rule: compile the step where the backend compiles it (torch runs eagerly)
JIT = BACKEND != "torch"
HEADS = ["XLMWithLMHeadModel", "XLMForSequenceClassification", "XLMForTokenClassification",
         "XLMForQuestionAnsweringSimple", "XLMForQuestionAnswering", "XLMForMultipleChoice"]
LR = 0.5


def twins(architecture: str, variant: str = "default"):
    """A Keras model and our PyTorch twin with the same random weights, dropout off."""
    config = tiny_config(variant, dropout=0.0, attention_dropout=0.0, summary_first_dropout=0.0)
    torch.manual_seed(0)
    twin = randomize_(pt.MODEL_CLASSES[architecture](config), std=0.1).train()
    model = MODEL_CLASSES[architecture](config)
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    return config, model, twin


def torch_sgd_step(twin, inputs: dict, labels: dict) -> dict:
    """The twin's weights after one SGD step of its own loss (w ← w − lr·∇w)."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in {**inputs, **labels}.items()}
    loss = twin(**tensors).loss
    loss.backward()
    with torch.no_grad():
        for param in twin.parameters():
            if param.grad is not None:
                param -= LR * param.grad
    return {k: v.detach().numpy() for k, v in twin.state_dict().items()}, float(loss)


@pytest.mark.parametrize("architecture", HEADS)
def test_one_sgd_fit_step_moves_weights_as_the_pytorch_twin(architecture):
    config, model, twin = twins(architecture, "multilang")
    inputs = arch_inputs(config, architecture, mode="attention_mask")
    labels = arch_labels(config, architecture, inputs)
    expected, expected_loss = torch_sgd_step(twin, inputs, labels)
    model.compile(optimizer=keras.optimizers.SGD(LR), jit_compile=JIT)
    history = model.fit({**inputs, **labels}, batch_size=len(inputs["input_ids"]), epochs=1, shuffle=False,
                        verbose=0)
    assert abs(history.history["loss"][0] - expected_loss) <= 1e-5
    ours = model.state_dict()
    worst = max(float(np.max(np.abs(ours[k] - expected[k]))) for k in ours)
    assert worst <= 1e-6, f"{architecture}: weights differ from the PyTorch twin's step by {worst:.3g}"


def test_compiled_keras_loss_fit_evaluate_predict():
    """A Keras loss on the logits with the labels as y: the same step as the twin's own cross entropy."""
    config, model, twin = twins("XLMForSequenceClassification")
    inputs = arch_inputs(config, "XLMForSequenceClassification", mode="attention_mask")
    labels = arch_labels(config, "XLMForSequenceClassification", inputs)
    expected, expected_loss = torch_sgd_step(twin, inputs, labels)
    model.compile(optimizer=keras.optimizers.SGD(LR), jit_compile=JIT, metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = len(inputs["input_ids"])
    history = model.fit(inputs, labels["labels"], batch_size=batch, shuffle=False, verbose=0).history
    assert abs(history["loss"][0] - expected_loss) <= 1e-5 and "accuracy" in history
    ours = model.state_dict()
    assert max(float(np.max(np.abs(ours[k] - expected[k]))) for k in ours) <= 1e-6
    loss, _ = model.evaluate(inputs, labels["labels"], batch_size=batch, verbose=0)
    logits = model.predict(inputs, batch_size=2, verbose=0).logits
    np.testing.assert_allclose(logits, to_np(model(inputs).logits), atol=1e-5)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels["labels"], logits)
    assert abs(loss - float(to_np(reference))) <= 1e-5


def test_own_loss_evaluate_and_predict_output_class():
    config, model, _ = twins("XLMWithLMHeadModel", "causal")
    inputs = arch_inputs(config, "XLMWithLMHeadModel", mode="attention_mask")
    labels = arch_labels(config, "XLMWithLMHeadModel", inputs)
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=JIT)
    evaluated = model.evaluate({**inputs, **labels}, batch_size=3, verbose=0)
    assert abs(evaluated - float(to_np(model(inputs, **labels).loss))) <= 1e-5
    out = model.predict(inputs, batch_size=3, verbose=0)
    assert type(out).__name__ == "MaskedLMOutput" and isinstance(out.logits, np.ndarray)
    np.testing.assert_allclose(out.logits, to_np(model(inputs).logits), atol=1e-5)


def test_mixed_bfloat16_fit_has_no_nan():
    config = tiny_config("multilang", n_layers=1)
    keras.utils.set_random_seed(0)
    model = MODEL_CLASSES["XLMWithLMHeadModel"](config, dtype="mixed_bfloat16")
    inputs = make_inputs(config, batch=8, seq_len=8, seed=3)
    inputs.pop("lengths")
    inputs["attention_mask"][1] = 0  # a row of padding only
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=JIT)
    losses = model.fit({**inputs, "labels": inputs["input_ids"]}, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow has no fused attention path")
@pytest.mark.parametrize("variant", ["default", "causal"])
def test_fused_attention_equals_the_explicit_path(variant):
    """keras.ops.dot_product_attention (taken without attention weights and head masks) against the
    explicit softmax path of the same model, a fully padded row included."""
    config = tiny_config(variant)
    model = MODEL_CLASSES["XLMWithLMHeadModel"](config)
    inputs = arch_inputs(config, "XLMWithLMHeadModel", mode="attention_mask")
    inputs["attention_mask"][1] = 0
    labels = arch_labels(config, "XLMWithLMHeadModel", inputs)
    from xlm.tf_backend.layers import fused_attention_available

    default = "fused" if fused_attention_available() else "eager"  # JAX's CPU: the explicit path is faster
    assert {layer.attn_implementation for layer in model.transformer.attentions} == {default}
    for layer in model.transformer.attentions:
        layer.attn_implementation = "fused"  # the GPU's default on JAX, checked here on the CPU
    fused = to_numpy(model(inputs, **labels, output_hidden_states=True))
    for layer in model.transformer.attentions:
        layer.attn_implementation = "eager"
    explicit = to_numpy(model(inputs, **labels, output_hidden_states=True))
    for key in fused:
        for a, b in zip(*(v if isinstance(v, tuple) else (v,) for v in (fused[key], explicit[key]))):
            assert np.max(np.abs(a - b)) <= 1e-6, key


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on JAX")
def test_data_parallel_over_two_jax_devices_equals_one():
    """keras.distribution.DataParallel on 2 virtual CPU devices (a process of its own: XLA's device count is
    fixed when JAX starts) trains as one device does."""
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_data_parallel_worker.py")
    runs = {}
    for devices in (1, 2):
        env = {**os.environ, "KERAS_BACKEND": "jax",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        done = subprocess.run([sys.executable, worker, str(devices)], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[devices] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs[2]["devices"] == 2 and runs[1]["devices"] == 1
    np.testing.assert_allclose(runs[2]["losses"], runs[1]["losses"], atol=1e-5)
    for name, value in runs[1]["weights"].items():
        np.testing.assert_allclose(runs[2]["weights"][name], value, atol=1e-5, err_msg=name)


def test_fit_from_a_py_dataset():
    """A keras.utils.PyDataset of dict batches (no tf.data): the way to feed fit on every backend."""

    class Batches(keras.utils.PyDataset):
        def __init__(self, inputs: dict, batch: int) -> None:
            super().__init__()
            self.inputs, self.batch = inputs, batch

        def __len__(self) -> int:
            return len(self.inputs["input_ids"]) // self.batch

        def __getitem__(self, index: int) -> dict:
            rows = slice(index * self.batch, (index + 1) * self.batch)
            return {name: value[rows] for name, value in self.inputs.items()}

    config = tiny_config(n_layers=1)
    keras.utils.set_random_seed(0)
    model = MODEL_CLASSES["XLMWithLMHeadModel"](config)
    inputs = make_inputs(config, batch=8, seq_len=8, seed=3)
    inputs.pop("lengths")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=JIT)
    losses = model.fit(Batches({**inputs, "labels": inputs["input_ids"]}, 4), epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
