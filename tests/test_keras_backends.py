"""The backend-parametrised Keras tests (marked `keras_backends`) on JAX and on torch, each in a pytest
process of its own (Keras fixes its backend when it is first imported), and the Keras stack on JAX and
torch with TensorFlow not importable at all."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("keras")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not _have(b), reason=f"{b} is not installed"))
            for b in ("jax", "torch")]


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="runs the other backends from the TensorFlow run")
@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_backend_suite(backend, backend_suites):
    """The run started by conftest.py's `backend_suites` at the start of the session."""
    code, out, err = backend_suites[backend].result()
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"KERAS_BACKEND={backend}: {summary}")
    assert code == 0, f"KERAS_BACKEND={backend} tests failed:\n{out[-8000:]}\n{err[-2000:]}"
    assert " passed" in summary and " failed" not in summary, summary


SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["tensorflow"] = None  # `import tensorflow` now fails, as where it is not installed
    import numpy as np
    import keras
    from xlm import XLMConfig
    from xlm.tf_backend import TFXLMWithLMHeadModel
    config = XLMConfig(vocab_size=50, emb_dim=16, n_layers=1, n_heads=2, causal=True)
    model = TFXLMWithLMHeadModel(config)
    ids = np.array([[0, 20, 30, 40], [0, 21, 31, 1]])
    out = model(ids, labels=ids)
    model.compile(optimizer="sgd")
    model.fit({"input_ids": ids, "labels": ids}, batch_size=2, verbose=0)
    generated = model.generate(ids, max_new_tokens=2)
    try:
        model(np.array([[0, 50]]))
    except ValueError as err:
        message = str(err)
    model.save_pretrained(sys.argv[1])
    again = TFXLMWithLMHeadModel.from_pretrained(sys.argv[1])
    same = np.array_equal(keras.ops.convert_to_numpy(again(ids).logits), keras.ops.convert_to_numpy(model(ids).logits))
    named = "input_ids contains id 50, outside [0, 50) (vocab_size = 50)" in message
    print(keras.backend.backend(), tuple(out.logits.shape), tuple(generated.shape), same, named)
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_without_tensorflow(backend, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "saved")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == (
        f"{backend} (2, 4, 50) (2, 6) True True")


def test_a_missing_backend_says_what_to_install():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    script = 'import sys; sys.modules["jax"] = None\nimport xlm.tf_backend'
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "Keras runs on the 'jax' backend (KERAS_BACKEND), which is not installed: `pip install 'jax[cpu]'`" in done.stderr


@pytest.mark.skipif(not _have("jax"), reason="jax is not installed")
def test_keras_training_cli_says_it_needs_tensorflow(tmp_path):
    from xlm.training_data import default_corpus_path

    env = {**os.environ, "KERAS_BACKEND": "jax"}
    command = [sys.executable, "-m", "xlm.train_cli", "pretrain", "--framework", "keras", "--data",
               default_corpus_path(), "--limit", "20", "--learn-bpe", "100", "--model-size", "tiny", "--steps", "1",
               "--output", str(tmp_path / "out"), "--quiet"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "--framework keras trains on Keras' TensorFlow backend" in done.stderr and "KERAS_BACKEND is 'jax'" in done.stderr
    assert not (tmp_path / "out").exists()


ROUND_TRIP = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras
    sys.path.insert(0, "tests")
    from xlm_testing import make_inputs, tiny_config
    from xlm.tf_backend import TFXLMForSequenceClassification

    mode, root = sys.argv[1], sys.argv[2]
    backend = keras.backend.backend()
    config = tiny_config("multilang")
    inputs = make_inputs(config)
    inputs.pop("lengths")
    if mode == "save":
        keras.utils.set_random_seed(7)
        model = TFXLMForSequenceClassification(config)
        out = os.path.join(root, backend)
        model.save_pretrained(out, safe_serialization=True)  # tf_model.h5 and model.safetensors
        model.save(os.path.join(out, "model.keras"))
        model.save_weights(os.path.join(out, "model.weights.h5"))
        np.savez(os.path.join(out, "state.npz"), **model.state_dict())
        print("saved")
    else:
        checked = []
        for saver in sorted(os.listdir(root)):
            if saver == backend:
                continue
            out = os.path.join(root, saver)
            state = dict(np.load(os.path.join(out, "state.npz")))
            with_weights = TFXLMForSequenceClassification(config)
            with_weights.load_weights(os.path.join(out, "model.weights.h5"))
            models = {"from_pretrained": TFXLMForSequenceClassification.from_pretrained(out),
                      ".keras": keras.models.load_model(os.path.join(out, "model.keras")),
                      ".weights.h5": with_weights}
            for name, model in models.items():
                loaded = model.state_dict()
                assert loaded.keys() == state.keys(), (saver, name)
                bad = [k for k in state if not np.array_equal(loaded[k], state[k])]
                assert not bad, (saver, name, bad)
                checked.append(f"{saver}:{name}")
        print(json.dumps(checked))
""")


def test_a_model_saved_on_one_backend_loads_bit_identically_on_the_others(tmp_path):
    backends = ["tensorflow"] + [b for b in ("jax", "torch") if _have(b)]
    for mode in ("save", "load"):
        for backend in backends:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run([sys.executable, "-c", ROUND_TRIP, mode, str(tmp_path)], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{mode} on {backend}: {done.stderr[-3000:]}"
            if mode == "load":
                checked = json.loads(done.stdout.strip().splitlines()[-1])
                others = [b for b in backends if b != backend]
                assert sorted(checked) == sorted(f"{saver}:{name}" for saver in others
                                                 for name in ("from_pretrained", ".keras", ".weights.h5"))
