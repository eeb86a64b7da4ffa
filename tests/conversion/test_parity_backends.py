"""The parity tool on every Keras backend, in bfloat16, and its device checks.

The Keras backend is fixed when keras is first imported, so each backend runs in its own process.
Those processes make `import tensorflow` fail, as on a machine without TensorFlow: the JAX and torch
paths must not need it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conversion.__main__ import DEFAULT_MODEL, main
from conversion.parity import BFLOAT16_ATOL, BFLOAT16_RTOL, DEFAULT_ATOL, run_parity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs xlm-convert's main() on argument lists (one per line of stdin) with TensorFlow unimportable,
# printing each exit status.
WITHOUT_TENSORFLOW = """\
import json, sys
sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
from conversion.__main__ import main
codes = [main(json.loads(line)) for line in sys.stdin if line.strip()]
print("exit codes", codes, "tensorflow imported:", sys.modules.get("tensorflow") is not None)
"""


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cli_without_tensorflow(*argv_lists: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("KERAS_BACKEND", None)  # the command line chooses it
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW], input="\n".join(map(json.dumps, argv_lists)),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def _backend_param(name: str):
    missing = name == "jax" and importlib.util.find_spec("jax") is None
    return pytest.param(name, marks=pytest.mark.skipif(missing, reason="jax is not installed"))


@pytest.mark.parametrize("backend", [_backend_param("jax"), _backend_param("torch")])
def test_convert_check_and_bfloat16_parity_on_a_keras_backend_without_tensorflow(backend, tmp_path):
    float32, bfloat16 = tmp_path / "float32.json", tmp_path / "bfloat16.json"
    proc = _cli_without_tensorflow(
        ["--quiet", "convert", DEFAULT_MODEL, str(tmp_path / "keras"), "--check", "--keras-backend", backend,
         "--json", str(float32)],
        ["parity", DEFAULT_MODEL, str(tmp_path / "keras"), "--keras-backend", backend, "--dtype", "bfloat16",
         "--json", str(bfloat16)],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exit codes [0, 0] tensorflow imported: False" in proc.stdout, proc.stdout + proc.stderr
    assert f"({backend} backend)" in proc.stdout and "from safetensors to h5" in proc.stdout

    report = json.loads(float32.read_text())
    assert report["passed"] and report["keras_backend"] == backend and report["dtype"] == "float32"
    assert report["keras_dir"] == str(tmp_path / "keras") and report["torch_device"] == "cpu"
    assert report["keras_device"] == ("cpu:0" if backend == "jax" else "cpu")
    assert report["atol"] == DEFAULT_ATOL and report["torch_diffs"] == []
    precision = report["precision"]
    assert precision["torch.backends.cuda.matmul.allow_tf32"] is False
    assert precision["torch.backends.cudnn.allow_tf32"] is False
    assert precision["torch float32_matmul_precision"] == "highest"
    assert "tf tensor_float_32_execution" not in precision  # TensorFlow never ran
    if backend == "jax":
        assert precision["jax_default_matmul_precision"] == "highest"
        assert report["versions"]["jax"] != "not installed"
    assert "tensorflow" not in report["versions"]
    diffs = {d["name"]: d for d in report["diffs"]}
    assert {"hidden_states.0", "attentions.3", "hidden_states.4", "logits"} <= set(diffs)
    assert all(d["max_abs"] < 1e-5 for d in diffs.values())
    assert diffs["logits"]["max_abs"] > 0  # honest float32 noise: the Keras side really computed

    report = json.loads(bfloat16.read_text())
    assert report["passed"] and report["dtype"] == "bfloat16" and report["keras_backend"] == backend
    assert (report["atol"], report["rtol"]) == (BFLOAT16_ATOL, BFLOAT16_RTOL)
    assert report["precision"]["keras dtype policy"] == "mixed_bfloat16"
    assert report["precision"]["torch autocast"] == "bfloat16 (cpu)"
    for side in ("diffs", "torch_diffs"):
        logits = {d["name"]: d for d in report[side]}["logits"]
        assert 1e-3 < logits["max_abs"] < BFLOAT16_ATOL + BFLOAT16_RTOL * logits["reference_max"]


def test_bfloat16_report_compares_both_stacks_with_the_float32_reference():
    report = run_parity(DEFAULT_MODEL, dtype="bfloat16")
    assert report.passed, report.table()
    assert (report.atol, report.rtol) == (BFLOAT16_ATOL, BFLOAT16_RTOL)
    assert [d.name for d in report.torch_diffs] == [d.name for d in report.diffs]
    worst = max(d.max_rel for d in report.diffs + report.torch_diffs)
    assert 1e-3 < worst < 2e-2  # bfloat16 rounding, well inside the tolerance
    table = report.table()
    assert "bfloat16" in table and "vs PyTorch float32 on cpu" in table and "PyTorch (bfloat16, cpu)" in table
    assert "0.05 + 0.05 * max|reference|" in table
    tight = run_parity(DEFAULT_MODEL, dtype="bfloat16", atol=1e-4, rtol=1e-4)  # float32's bar fails it
    assert not tight.passed and tight.failures


def test_gpu_request_names_each_framework_without_a_gpu():
    if _has_cuda():
        pytest.skip("a CUDA GPU is present")
    backend = "jax" if importlib.util.find_spec("jax") else "torch"
    proc = _cli_without_tensorflow(["parity", DEFAULT_MODEL, "--device", "gpu", "--keras-backend", backend],
                                   timeout=120)
    assert "exit codes [2]" in proc.stdout, proc.stdout + proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert errors[-1].startswith("xlm-convert: error: --device gpu: PyTorch"), proc.stderr
    assert "Traceback" not in proc.stderr
    if backend == "jax":
        assert "PyTorch sees no CUDA GPU" in errors[-1] and "JAX (the Keras backend) sees no GPU" in errors[-1]
    else:
        assert "PyTorch (also the Keras backend) sees no CUDA GPU" in errors[-1]


def test_another_keras_backend_after_keras_is_imported_is_a_clear_error(capsys):
    import keras

    other = "torch" if keras.backend.backend() != "torch" else "tensorflow"
    assert main(["parity", DEFAULT_MODEL, "--keras-backend", other]) == 2
    err = capsys.readouterr().err
    assert f"keras is already imported with the {keras.backend.backend()!r} backend" in err
    assert f"KERAS_BACKEND={other}" in err and "Traceback" not in err


def test_unknown_dtype_and_device_are_value_errors():
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        run_parity(DEFAULT_MODEL, dtype="float16")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        run_parity(DEFAULT_MODEL, device="tpu")
