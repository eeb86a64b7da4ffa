"""Model helpers of the Keras stack on every Keras backend, against the PyTorch twin (and so against
transformers' PyTorch numbers): num_parameters, problem_type, push_to_hub and gradient checkpointing
(rematerialised layers)."""

import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from tf_helpers import arch_inputs, arch_labels, randomize_  # noqa: E402
from xlm_testing import CONFIG_VARIANTS, tiny_config  # noqa: E402
import xlm.torch_backend as pt  # noqa: E402
from xlm.tf_backend import MODEL_CLASSES  # noqa: E402

pytestmark = pytest.mark.keras_backends
BACKEND = keras.backend.backend()
#: the fit steps compile on JAX (always); on TensorFlow, XLA would take most of the test's time
JIT = BACKEND == "jax"


def twins(architecture: str, variant: str = "default", **overrides):
    config = tiny_config(variant, **overrides)
    torch.manual_seed(0)
    twin = randomize_(pt.MODEL_CLASSES[architecture](config), std=0.1)
    model = MODEL_CLASSES[architecture](config)
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    return config, model, twin


# --- num_parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("architecture", sorted(MODEL_CLASSES))
def test_num_parameters_equal_the_pytorch_twin(variant, architecture):
    """Every count (all, trainable only, without embeddings, both) is the PyTorch twin's, which
    test_torch_helpers checks against transformers: the tied projection once, no dropout seed state."""
    config = tiny_config(variant)
    model, twin = MODEL_CLASSES[architecture](config), pt.MODEL_CLASSES[architecture](config)
    for only_trainable in (False, True):
        for exclude_embeddings in (False, True):
            expected = twin.num_parameters(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
            actual = model.num_parameters(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
            assert actual == expected, (only_trainable, exclude_embeddings)


# --- problem_type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_labels", "label_kind", "problem_type"),
    [(1, "float", "regression"), (3, "int", "single_label_classification"),
     (3, "float", "multi_label_classification")],
)
def test_problem_type_set_by_the_first_loss(num_labels, label_kind, problem_type):
    """The first loss writes config.problem_type, as the PyTorch twin (and transformers) does, with the twin's loss."""
    config, model, twin = twins("XLMForSequenceClassification", num_labels=num_labels)
    model.config.problem_type = twin.config.problem_type = None  # the twins share one config object otherwise
    twin.config = model.config.__class__.from_dict(model.config.to_dict())
    twin.eval()
    inputs = arch_inputs(config, "XLMForSequenceClassification")
    rng = np.random.default_rng(4)
    if label_kind == "int":
        labels = rng.integers(0, num_labels, 3)
    elif num_labels == 1:
        labels = rng.normal(size=3).astype(np.float32)
    else:
        labels = rng.integers(0, 2, (3, num_labels)).astype(np.float32)
    loss = float(keras.ops.convert_to_numpy(model(inputs, labels=labels).loss))
    with torch.no_grad():
        expected = twin(**{k: torch.from_numpy(v) for k, v in inputs.items()}, labels=torch.from_numpy(labels)).loss
    assert model.config.problem_type == twin.config.problem_type == problem_type
    assert abs(loss - expected.item()) <= 1e-5


# --- push_to_hub --------------------------------------------------------------------------------


def test_push_to_hub_uploads_what_save_pretrained_writes(tmp_path, monkeypatch):
    """One repository creation and one upload of the save_pretrained files (tf_model.h5 and, by default
    as in transformers, model.safetensors), which the PyTorch twin loads with the same outputs; no network."""
    import huggingface_hub
    from huggingface_hub import RepoUrl, constants

    calls = []

    class RecordingHfApi:
        def __init__(self, token=None, **kwargs):
            self.token = token

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            files = {name: open(os.path.join(folder_path, name), "rb").read() for name in os.listdir(folder_path)}
            calls.append(("upload_folder", repo_id, kwargs, files))
            return "commit-info"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    config, model, twin = twins("XLMForTokenClassification", "multilang")
    assert model.push_to_hub("me/keras-xlm", revision="dev") == "commit-info"
    assert [call[:2] for call in calls] == [("create_repo", "me/keras-xlm"), ("upload_folder", "me/keras-xlm")]
    upload = calls[1]
    assert upload[2]["revision"] == "dev" and upload[2]["commit_message"] == "Upload model"
    assert sorted(upload[3]) == ["config.json", "model.safetensors", "tf_model.h5"]
    for name, data in upload[3].items():
        (tmp_path / name).write_bytes(data)
    loaded = pt.XLMForTokenClassification.from_pretrained(tmp_path)
    inputs = arch_inputs(config, "XLMForTokenClassification")
    with torch.no_grad():
        expected = loaded(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs).logits), expected, atol=1e-5)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="SavedModel export runs on TensorFlow")
def test_saved_model_says_it_needs_tensorflow(tmp_path):
    model = MODEL_CLASSES["XLMModel"](tiny_config())
    with pytest.raises(RuntimeError, match="the serving signature \\(SavedModel export\\) needs Keras on TensorFlow"):
        model.save_pretrained(tmp_path, saved_model=True)


# --- gradient checkpointing ---------------------------------------------------------------------


def _sgd_step(model, data: dict, jit: bool) -> tuple[float, dict]:
    """One fit step, SGD with learning rate 1: the weights move by exactly minus their gradient."""
    model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit)
    history = model.fit(data, batch_size=len(data["input_ids"]), epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], model.state_dict()


@pytest.mark.parametrize(("architecture", "dropout", "jit"), [
    ("XLMWithLMHeadModel", 0.0, JIT), ("XLMWithLMHeadModel", 0.2, JIT), ("XLMForSequenceClassification", 0.2, JIT),
    pytest.param("XLMWithLMHeadModel", 0.2, True, marks=pytest.mark.tf_only, id="XLA"),
])
def test_gradient_checkpointing_keeps_loss_and_gradients(architecture, dropout, jit, monkeypatch):
    """A fit step with rematerialised layers gives the loss and weights (= gradients, at learning rate 1)
    of one without, ≤ 1e-6, dropout masks included; every layer went through keras.remat. On TensorFlow
    once under XLA too (what fit compiles to on a GPU)."""
    overrides = {"n_layers": 1} if jit and BACKEND == "tensorflow" else {}  # XLA compiles the step four times
    config, model, _ = twins(architecture, "multilang", dropout=dropout, attention_dropout=dropout, **overrides)
    inputs = arch_inputs(config, architecture)
    data = {**inputs, **arch_labels(config, architecture, inputs)}
    start = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]  # weights and dropout seeds

    def restart() -> None:
        for variable, value in zip(model.variables, start):
            variable.assign(value)
        if BACKEND == "torch":  # Keras' unseeded dropout on torch draws from torch's generator
            torch.manual_seed(0)

    remat_calls = []
    original = keras.remat
    monkeypatch.setattr(keras, "remat", lambda f: remat_calls.append(f) or original(f))

    assert model.supports_gradient_checkpointing and not model.is_gradient_checkpointing
    restart()
    loss, weights = _sgd_step(model, data, jit)
    assert remat_calls == []
    restart()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed_loss, checkpointed = _sgd_step(model, data, jit)
    assert len(remat_calls) >= config.n_layers
    assert abs(checkpointed_loss - loss) <= 1e-6
    for name in weights:
        np.testing.assert_allclose(checkpointed[name], weights[name], atol=1e-6, rtol=0, err_msg=name)
    if dropout:  # the masks come from the seeds: from the seeds the step left, the loss differs
        assert abs(_sgd_step(model, data, jit)[0] - checkpointed_loss) > 1e-4

    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    restart()
    count = len(remat_calls)
    again_loss, again = _sgd_step(model, data, jit)
    assert len(remat_calls) == count
    # the same step again: bit for bit, but torch's CPU backward kernels are not run-to-run reproducible
    exact = 0.0 if BACKEND != "torch" else 1e-6
    assert abs(again_loss - loss) <= exact
    for name in weights:
        np.testing.assert_allclose(again[name], weights[name], atol=exact, rtol=0, err_msg=name)


def test_gradient_checkpointing_options_and_inference(monkeypatch):
    """No options for keras.remat; inference calls are not rematerialised and give the same outputs."""
    model = MODEL_CLASSES["XLMModel"](tiny_config())
    with pytest.raises(ValueError, match=r"keras.remat takes no options; got gradient_checkpointing_kwargs="
                                         r"\{'use_reentrant': True\}"):
        model.gradient_checkpointing_enable({"use_reentrant": True})
    assert not model.is_gradient_checkpointing
    inputs = arch_inputs(model.config, "XLMModel")
    expected = keras.ops.convert_to_numpy(model(inputs).last_hidden_state)
    model.gradient_checkpointing_enable()
    remat_calls = []
    original = keras.remat
    monkeypatch.setattr(keras, "remat", lambda f: remat_calls.append(f) or original(f))
    # (the second call runs TensorFlow's inference graph: last-bit differences)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs).last_hidden_state), expected, atol=1e-6)
    assert remat_calls == []
    keras.ops.convert_to_numpy(model(inputs, training=True).last_hidden_state)
    assert len(remat_calls) == model.config.n_layers
