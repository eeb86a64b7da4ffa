"""Model helpers of the PyTorch stack: num_parameters, torchscript, problem_type, push_to_hub and gradient
checkpointing, against transformers 4.57.6 where it has them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from torch_parity import ARCHITECTURES, max_diff, model_pair, randomize_, torch_inputs

import xlm.torch_backend as ours
from xlm_testing import CONFIG_VARIANTS, tiny_config, transformers_config


def _architecture_inputs(config, architecture: str) -> dict:
    inputs = torch_inputs(config)
    kwargs = {key: inputs[key] for key in ("input_ids", "attention_mask", "langs", "token_type_ids")}
    if architecture == "XLMForMultipleChoice":
        kwargs = {key: torch.stack([value, value.flip(0)], dim=1) for key, value in kwargs.items()}
    return kwargs


# --- num_parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_num_parameters_equal_transformers(variant, architecture):
    """Every count (all, trainable only, without embeddings, both) is transformers' on the same config:
    tied projections counted once, the fixed sinusoidal table not trainable, embedding tables left out."""
    if variant == "asm" and architecture == "XLMWithLMHeadModel":
        pytest.skip("transformers' adaptive-softmax head is not comparable (see test_torch_parity_hf)")
    reference, model = model_pair(variant, architecture)
    counts = []
    for only_trainable in (False, True):
        for exclude_embeddings in (False, True):
            expected = reference.num_parameters(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
            actual = model.num_parameters(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
            assert actual == expected, (only_trainable, exclude_embeddings)
            counts.append(actual)
    assert counts[0] > counts[1]  # the embeddings are part of the total
    if variant == "sinusoidal":
        assert counts[0] - counts[2] == 64 * 32  # the fixed position table is not trained


# --- torchscript --------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["XLMModel", "XLMWithLMHeadModel", "XLMForSequenceClassification",
                                          "XLMForQuestionAnsweringSimple"])
def test_torchscript_traces_with_tuple_outputs(tmp_path, architecture):
    """from_pretrained(torchscript=True): tuple outputs equal to transformers' torchscript model and to our
    model; torch.jit.trace gives the same numbers (on other inputs too); the LM projection is a copy."""
    reference, model = model_pair("multilang", architecture)
    model.save_pretrained(tmp_path)
    traced_model = getattr(ours, architecture).from_pretrained(tmp_path, torchscript=True)
    assert traced_model.config.torchscript and not traced_model.config.use_return_dict
    reference.save_pretrained(tmp_path / "reference")
    hf_script = getattr(transformers, architecture).from_pretrained(tmp_path / "reference", torchscript=True).eval()

    inputs = _architecture_inputs(model.config, architecture)
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["langs"])
    with torch.no_grad():
        expected = hf_script(*args)
        eager = traced_model(*args)
        as_dict = model(*args)
    assert isinstance(eager, tuple) and isinstance(expected, tuple) and len(eager) == len(expected)
    assert max_diff(eager, expected) <= 1e-5
    assert max_diff(eager, tuple(as_dict.values())) == 0

    traced = torch.jit.trace(traced_model, args)
    other = _architecture_inputs(model.config, architecture)
    other = {k: v[:2, :7].contiguous() for k, v in other.items()}
    other_args = (other["input_ids"], other["attention_mask"], other["langs"])
    with torch.no_grad():
        assert max_diff(traced(*args), eager) <= 1e-6
        assert max_diff(traced(*other_args), traced_model(*other_args)) <= 1e-6

    if architecture == "XLMWithLMHeadModel":
        projection, embeddings = traced_model.pred_layer.proj.weight, traced_model.transformer.embeddings.weight
        assert projection is not embeddings
        assert torch.equal(projection, embeddings)  # the copy of the loaded table, not of the initialisation
        assert traced_model.num_parameters() == hf_script.num_parameters()


# --- problem_type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_labels", "label_kind", "problem_type"),
    [(1, "float", "regression"), (3, "long", "single_label_classification"),
     (3, "float", "multi_label_classification")],
)
def test_problem_type_set_by_the_first_loss(num_labels, label_kind, problem_type):
    """As transformers: the first loss writes config.problem_type; later calls keep it (a float label
    batch after integer ones is then treated as single-label, in both)."""
    reference, model = model_pair("default", "XLMForSequenceClassification", (("num_labels", num_labels),))
    reference.config.problem_type = model.config.problem_type = None
    inputs = _architecture_inputs(model.config, "XLMForSequenceClassification")
    rng = np.random.default_rng(3)
    if label_kind == "long":
        labels = torch.from_numpy(rng.integers(0, num_labels, 3))
    elif num_labels == 1:
        labels = torch.from_numpy(rng.normal(size=3)).float()
    else:
        labels = torch.from_numpy(rng.integers(0, 2, (3, num_labels))).float()
    with torch.no_grad():
        expected, actual = reference(**inputs, labels=labels), model(**inputs, labels=labels)
    assert reference.config.problem_type == model.config.problem_type == problem_type
    assert abs(expected.loss.item() - actual.loss.item()) <= 1e-5
    with torch.no_grad():
        model(**inputs)  # no labels: nothing changes
    assert model.config.problem_type == problem_type


# --- push_to_hub --------------------------------------------------------------------------------


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records the calls and the files each upload would send."""

    calls: list = []

    def __init__(self, token=None, **kwargs):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        from huggingface_hub import RepoUrl

        RecordingHfApi.calls.append(("create_repo", repo_id, kwargs, self.token))
        owner = repo_id if "/" in repo_id else f"someone/{repo_id}"
        return RepoUrl(f"https://huggingface.co/{owner}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {}
        for root, _, names in os.walk(folder_path):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, folder_path)] = f.read()
        RecordingHfApi.calls.append(("upload_folder", repo_id, kwargs, files))
        return "commit-info"


@pytest.fixture
def recording_hub(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    RecordingHfApi.calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return RecordingHfApi.calls


def test_push_to_hub_uploads_what_save_pretrained_writes(tmp_path, recording_hub):
    """One repository creation and one upload of exactly the save_pretrained files, which load back
    into transformers with the same outputs; no network."""
    reference, model = model_pair("multilang", "XLMForSequenceClassification")
    result = model.push_to_hub("me/tiny-xlm", private=True, token="secret", commit_message="first", create_pr=True)
    assert result == "commit-info"
    (create, repo_id, create_kwargs, token), (upload, upload_repo, upload_kwargs, files) = recording_hub
    assert (create, repo_id, token, create_kwargs["private"], create_kwargs["exist_ok"]) == (
        "create_repo", "me/tiny-xlm", "secret", True, True)
    assert (upload, upload_repo, upload_kwargs["commit_message"], upload_kwargs["create_pr"]) == (
        "upload_folder", "me/tiny-xlm", "first", True)
    model.save_pretrained(tmp_path / "local")
    assert sorted(files) == sorted(os.listdir(tmp_path / "local")) == ["config.json", "model.safetensors"]
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for name, data in files.items():
        (pushed / name).write_bytes(data)
    loaded = transformers.XLMForSequenceClassification.from_pretrained(pushed).eval()
    inputs = _architecture_inputs(model.config, "XLMForSequenceClassification")
    with torch.no_grad():
        assert max_diff(loaded(**inputs).logits, reference(**inputs).logits) <= 1e-6

    recording_hub.clear()
    model.config.push_to_hub("me/tiny-xlm")
    assert [call[0] for call in recording_hub] == ["create_repo", "upload_folder"]
    assert sorted(recording_hub[1][3]) == ["config.json"]
    assert recording_hub[1][2]["commit_message"] == "Upload config"


def test_push_to_hub_offline_says_so(tmp_path):
    """HF_HUB_OFFLINE=1 (set before huggingface_hub is imported): a clear OSError, nothing uploaded."""
    script = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from xlm_testing import tiny_config\n"
        "from xlm.torch_backend import XLMModel\n"
        "model = XLMModel(tiny_config())\n"
        "for target in (model, model.config):\n"
        "    try:\n"
        "        target.push_to_hub('me/tiny-xlm')\n"
        "    except OSError as err:\n"
        "        print('OSError:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("OSError:")]
    assert lines == [
        "OSError: cannot push the XLMModel to Hub repository 'me/tiny-xlm': offline mode is on (HF_HUB_OFFLINE=1); "
        "unset HF_HUB_OFFLINE to upload, or save_pretrained(directory) to keep the files locally",
        "OSError: cannot push the config to Hub repository 'me/tiny-xlm': offline mode is on (HF_HUB_OFFLINE=1); "
        "unset HF_HUB_OFFLINE to upload, or save_pretrained(directory) to keep the files locally",
    ]


def test_push_to_hub_rejects_a_bad_repo_id(recording_hub):
    _, model = model_pair("default", "XLMModel")
    with pytest.raises(ValueError, match=r"repo_id must be a Hub repository id .*got '../escape'"):
        model.push_to_hub("../escape")
    assert recording_hub == []


# --- gradient checkpointing ---------------------------------------------------------------------


def _loss_and_gradients(model, inputs: dict, labels: torch.Tensor, seed: int) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), gradients


@pytest.mark.parametrize("variant", ["default", "causal", "multilang"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradient_checkpointing_keeps_loss_and_gradients(variant, dropout):
    """A training step with checkpointed layers gives the loss and every parameter gradient of one
    without (≤ 1e-6), dropout on too (the RNG state is replayed in the recomputation)."""
    config = tiny_config(variant, dropout=dropout, attention_dropout=dropout)
    torch.manual_seed(0)
    model = ours.XLMWithLMHeadModel(config)
    randomize_(model, seed=2)
    model.train()
    inputs = {k: v for k, v in torch_inputs(config).items() if k in ("input_ids", "attention_mask", "langs")}
    labels = torch.where(inputs["attention_mask"] == 1, inputs["input_ids"], -100)

    assert ours.XLMWithLMHeadModel.supports_gradient_checkpointing and not model.is_gradient_checkpointing
    loss, gradients = _loss_and_gradients(model, inputs, labels, seed=7)
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing and model.transformer.gradient_checkpointing
    recomputed = []
    handle = model.transformer.ffns[0].register_forward_hook(lambda *args: recomputed.append(1))
    checkpointed_loss, checkpointed = _loss_and_gradients(model, inputs, labels, seed=7)
    handle.remove()
    assert len(recomputed) == 2  # the layer ran again in the backward pass: it was checkpointed
    assert abs(checkpointed_loss - loss) <= 1e-6
    assert sorted(checkpointed) == sorted(gradients) and len(gradients) > 10
    for name, gradient in gradients.items():
        assert max_diff(checkpointed[name], gradient) <= 1e-6, name
    if dropout:  # the dropout masks are drawn again per seed: another seed gives another loss
        assert abs(_loss_and_gradients(model, inputs, labels, seed=8)[0] - loss) > 1e-4

    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    again_loss, again = _loss_and_gradients(model, inputs, labels, seed=7)
    assert again_loss == loss and all(torch.equal(again[name], gradients[name]) for name in gradients)


def test_gradient_checkpointing_only_in_training():
    """Evaluation, no_grad and cached (generation) calls are not checkpointed and give the same outputs."""
    config = tiny_config("causal")
    model = ours.XLMWithLMHeadModel(config).eval()
    inputs = torch_inputs(config)
    with torch.no_grad():
        expected = model(inputs["input_ids"]).logits
    model.gradient_checkpointing_enable({"use_reentrant": False, "preserve_rng_state": True})
    calls = []
    model.transformer.ffns[0].register_forward_hook(lambda *args: calls.append(1))
    logits = model(inputs["input_ids"]).logits
    logits.sum().backward()
    assert len(calls) == 1
    assert torch.equal(logits.detach(), expected)
    model.train()  # training with a cache: not checkpointed either (the recomputation would write the cache again)
    cache: dict = {}
    model(inputs["input_ids"], cache=cache).logits.sum().backward()
    assert len(calls) == 2 and cache["slen"] == inputs["input_ids"].shape[1]
