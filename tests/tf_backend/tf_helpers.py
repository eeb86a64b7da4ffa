"""Helpers of the Keras-stack tests: inputs and labels per head, reference models on the same weights,
and the comparison every parity test uses."""

from __future__ import annotations

import numpy as np

from xlm_testing import make_inputs, transformers_config
from xlm.weights import ARCHITECTURES, spec_index, weight_specs

TOL = 1e-5
#: How padding reaches the model: an attention_mask, lengths, or inferred from pad_index.
PADDING_MODES = ("attention_mask", "lengths", "pad_index")
#: Outputs whose order among tied scores is float noise: compared sorted (indices: unpadded only).
BEAM_VALUES = ("start_top_log_probs", "end_top_log_probs")
BEAM_INDICES = ("start_top_index", "end_top_index")


def arch_inputs(config, architecture: str, mode: str = "attention_mask", pad: bool = True, seed: int = 0) -> dict:
    """make_inputs() for `architecture` with padding given one way (see PADDING_MODES).

    Multiple choice gets (batch, 2 choices, seq) inputs and never `lengths` (the model ignores it)."""
    inputs = make_inputs(config, pad=pad, seed=seed)
    if mode != "attention_mask":
        inputs.pop("attention_mask")
    if mode != "lengths":
        inputs.pop("lengths")
    if architecture == "XLMForMultipleChoice":
        inputs.pop("lengths", None)
        inputs = {k: np.stack([v, v[::-1]], axis=1) for k, v in inputs.items()}
    return inputs


def arch_labels(config, architecture: str, inputs: dict, seed: int = 1) -> dict:
    """Labels of every kind a head takes, including ignored (-100) and out-of-range positions."""
    rng = np.random.default_rng(seed)
    ids = inputs["input_ids"]
    batch = ids.shape[0]
    if architecture == "XLMWithLMHeadModel":
        labels = ids.copy()
        labels[0, :3] = -100
        return {"labels": labels}
    if architecture in ("XLMForSequenceClassification", "XLMForMultipleChoice"):
        return {"labels": rng.integers(0, 2, size=batch)}
    if architecture == "XLMForTokenClassification":
        labels = rng.integers(0, config.num_labels, size=ids.shape)
        labels[-1, -2:] = -100
        return {"labels": labels}
    slen = ids.shape[-1]
    starts = rng.integers(0, slen, size=batch)
    ends = np.minimum(starts + 2, slen - 1)
    if architecture == "XLMForQuestionAnsweringSimple":
        starts[-1] = slen + 30  # outside the input: clamped and ignored
        return {"start_positions": starts, "end_positions": ends}
    if architecture == "XLMForQuestionAnswering":
        return {
            "start_positions": starts,
            "end_positions": ends,
            "cls_index": np.zeros(batch, dtype=np.int64),
            "is_impossible": rng.integers(0, 2, size=batch).astype(np.float32),
        }
    return {}


def randomize_(model, seed: int = 1, std: float = 0.2):
    """Draw every trainable parameter of a PyTorch model (LayerNorms and biases too) from N(0, std),
    so that no weight sits at a value (0 or 1) that would hide a mix-up."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model


def hf_torch_model(config, architecture: str):
    """transformers' PyTorch class with random weights (see `randomize_`), in eval mode."""
    import torch
    import transformers

    torch.manual_seed(0)
    return randomize_(getattr(transformers, architecture)(transformers_config(config))).eval()


def torch_state(model) -> dict:
    """A PyTorch model's state_dict as numpy arrays."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def fit_config(**overrides):
    """The config of the fit tests: one layer, as XLA compiles a train step per head in time that
    grows with the graph."""
    from xlm_testing import tiny_config

    return tiny_config(n_layers=1, **overrides)


def learnable_dataset(config, architecture: str, batch: int = 8, n: int = 16):
    """A small task a head can fit in a few steps, as a tf.data.Dataset with the labels in the inputs."""
    import tensorflow as tf

    inputs = make_inputs(config, batch=n, seq_len=8, seed=3)
    inputs.pop("lengths")
    ids = inputs["input_ids"]
    if architecture == "XLMForMultipleChoice":
        inputs = {k: np.stack([v, v[::-1]], axis=1) for k, v in inputs.items()}
        labels = {"labels": (ids[:, 0] % 2).astype(np.int64)}
    elif architecture == "XLMWithLMHeadModel":
        labels = {"labels": ids}
    elif architecture == "XLMForSequenceClassification":
        labels = {"labels": (ids[:, 0] % 2).astype(np.int64)}
    elif architecture == "XLMForTokenClassification":
        labels = {"labels": (ids % 2).astype(np.int64)}
    else:
        starts = (ids[:, 0] % 3).astype(np.int64)
        labels = {"start_positions": starts, "end_positions": starts + 2}
    return tf.data.Dataset.from_tensor_slices({**inputs, **labels}).batch(batch)


def fit_losses(architecture: str, epochs: int = 3, dropout: float = 0.1, **compile_kwargs) -> list[float]:
    """Per-epoch losses of `model.fit` on `learnable_dataset` (Adam, the model's own loss)."""
    import keras

    from xlm.tf_backend import MODEL_CLASSES

    config = fit_config(dropout=dropout, attention_dropout=dropout, summary_first_dropout=dropout)
    keras.utils.set_random_seed(0)
    model = MODEL_CLASSES[architecture](config)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), **compile_kwargs)
    history = model.fit(learnable_dataset(config, architecture), epochs=epochs, verbose=0)
    return history.history["loss"]


def hf_torch_outputs(model, config, architecture: str, inputs: dict, labels: dict | None = None) -> dict:
    """Outputs of a transformers PyTorch model as numpy; its asm LM head (which crashes on 3-D input)
    is computed as it is meant to be: log-probs of the flattened states, loss over labels != -100."""
    import torch

    flags = dict(output_hidden_states=True, output_attentions=True, return_dict=True)
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in {**inputs, **(labels or {})}.items()}
    with torch.no_grad():
        if architecture == "XLMWithLMHeadModel" and config.asm:
            labels_tensor = tensors.pop("labels", None)
            encoded = model.transformer(**tensors, **flags)
            flat = encoded.last_hidden_state.reshape(-1, config.emb_dim)
            out = {
                "logits": model.pred_layer.proj.log_prob(flat).reshape(*encoded.last_hidden_state.shape[:-1], -1),
                "hidden_states": encoded.hidden_states,
                "attentions": encoded.attentions,
            }
            if labels_tensor is not None:
                flat_labels = labels_tensor.reshape(-1)
                keep = flat_labels != -100
                out["loss"] = model.pred_layer.proj(flat[keep], flat_labels[keep]).loss
        else:
            out = dict(model(**tensors, **flags))
    return to_numpy(out)


def to_numpy(outputs) -> dict:
    """Every output field as numpy (tuples of arrays for hidden states and attentions)."""
    result = {}
    for key, value in dict(outputs).items():
        if isinstance(value, (tuple, list)):
            result[key] = tuple(_array(v) for v in value)
        else:
            result[key] = _array(value)
    return result


def to_np(value, dtype=None) -> np.ndarray:
    """A tensor of any Keras backend (or an array) as numpy; torch tensors without their autograd history."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value), dtype=dtype)


def _array(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()  # numpy lacks bfloat16
    return np.asarray(value)


def compare(ours: dict, reference: dict, padded: bool, keys=None) -> dict[str, float]:
    """Max |difference| per shared output (beam values sorted; beam indices exact, unpadded only)."""
    diffs = {}
    for key in keys or sorted(set(ours) & set(reference)):
        a, b = ours[key], reference[key]
        if key in BEAM_INDICES:
            if not padded:
                assert np.array_equal(a, b), f"{key} differs on unpadded inputs: {a} vs {b}"
            continue
        if isinstance(a, tuple):
            assert len(a) == len(b), f"{key}: {len(a)} entries vs {len(b)}"
            diffs[key] = max(_max_diff(x, y) for x, y in zip(a, b))
        elif key in BEAM_VALUES:
            diffs[key] = _max_diff(np.sort(a, axis=-1), np.sort(b, axis=-1))
        else:
            diffs[key] = _max_diff(a, b)
    return diffs


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def assert_close(diffs: dict[str, float], context: str, tol: float = TOL) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    assert not bad, f"{context}: differences above {tol}: {bad}"


def load_into_hf_tf(model, state: dict, config, architecture: str) -> None:
    """Assign PyTorch-named arrays to a transformers TF (tf-keras) model through the table's h5 names."""
    by_h5 = spec_index(weight_specs(config, architecture), "h5_name")
    by_torch = spec_index(weight_specs(config, architecture), "torch_name")
    embeddings = by_torch[("" if architecture == "XLMModel" else "transformer.") + "embeddings.weight"]
    for variable in model.weights:
        name = variable.name.split("/", 1)[1].rsplit(":", 1)[0]
        spec = by_h5.get(name)
        if spec is None and name.startswith("pred_layer_._proj/") and name.endswith("weight"):
            spec = embeddings  # transformers' TF LM head re-lists the tied embedding matrix
        assert spec is not None, f"no weight-table entry for transformers' TF weight {variable.name}"
        value = state[spec.torch_name]
        variable.assign(value.T if spec.transpose else value)


#: transformers' TF port lacks these (NotImplementedError there, or a crash on a causal attention_mask).
def hf_tf_supports(config, architecture: str, mode: str) -> bool:
    if architecture == "XLMForQuestionAnswering" or config.sinusoidal_embeddings:
        return False
    if architecture == "XLMWithLMHeadModel" and config.asm:
        return False
    if config.causal and mode == "attention_mask":
        return False
    return True


def hf_tf_model(config, architecture: str, state: dict):
    """transformers' TF class (tf-keras) on the given PyTorch-named weights."""
    import tensorflow as tf
    import transformers

    hf_config = transformers_config(config)
    hf_config.initializer_range = 0.02  # its TFXLMForMultipleChoice reads a field XLMConfig lacks
    model = getattr(transformers, "TF" + architecture)(hf_config)
    build = arch_inputs(config, architecture, mode="pad_index")
    model({k: tf.constant(v) for k, v in build.items()})  # builds without its causal-mask bug
    load_into_hf_tf(model, state, config, architecture)
    return model


__all__ = [
    "ARCHITECTURES",
    "PADDING_MODES",
    "TOL",
    "arch_inputs",
    "arch_labels",
    "assert_close",
    "compare",
    "fit_config",
    "fit_losses",
    "learnable_dataset",
    "hf_tf_model",
    "hf_tf_supports",
    "hf_torch_model",
    "hf_torch_outputs",
    "load_into_hf_tf",
    "randomize_",
    "to_np",
    "to_numpy",
    "torch_state",
]
