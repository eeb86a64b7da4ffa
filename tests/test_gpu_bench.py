"""bench/gpu/run.sh end to end with --device cpu: the prepared GPU run, on small shapes.

Marked `bench` (deselect with `-m "not bench"`); it runs in the normal suite. Needs jax, keras and
transformers (the installed release stands in for the GPU machine's transformers 5).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_SH = os.path.join(ROOT, "bench", "gpu", "run.sh")

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("jax", "keras", "transformers")),
                       reason="the GPU bench needs jax, keras and transformers"),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)  # run.sh sets jax
    return env


def test_run_sh_on_cpu_writes_parity_torch_and_keras_jax_results(tmp_path):
    proc = subprocess.run(["bash", RUN_SH, "--device", "cpu", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "installing from" not in proc.stdout  # keras is importable here: nothing to install
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert report["errors"] == [] and report["device"] == "cpu"
    assert report["environment"]["keras backend"] == "jax"
    assert report["precision"]["jax_default_matmul_precision"] == "highest"
    assert report["precision"]["torch.backends.cuda.matmul.allow_tf32"] is False

    parity = report["parity"]
    assert {(r["model"].split(" ")[0], r["run"]) for r in parity} == {
        ("default_model", "float32"), ("default_model", "bfloat16"), ("2048-shaped,", "float32"),
        ("2048-shaped,", "bfloat16")}
    for row in parity:
        assert row["passed"] and row["report"]["keras_backend"] == "jax", row
        assert row["keras_device"] == "cpu:0" and row["torch_device"] == "cpu"
    bf16 = [r for r in parity if r["run"] == "bfloat16"]
    assert all(r["torch_vs_reference"] and r["atol"] == 5e-2 for r in bf16)

    torch_part = report["torch"]
    assert torch_part["same_weights_forward_max_abs_diff"] < 1e-4
    assert torch_part["loading"]["unexpected"] == []
    rows = torch_part["rows"]
    assert {(r["kind"], r["dtype"]) for r in rows} == {(k, d) for k in ("forward", "train step")
                                                       for d in ("float32", "bfloat16")}
    assert len(rows) == 8
    for row in rows:
        assert row["ours_ms"] > 0 and row["theirs_ms"] > 0
        assert row["speedup"] == pytest.approx(row["theirs_ms"] / row["ours_ms"])

    (keras_row,) = report["keras_jax"]
    assert keras_row["dtype policy"] == "float32" and keras_row["jit_compile"] is True
    assert keras_row["step_ms"] > 0 and keras_row["finite"] and keras_row["device"].startswith("cpu")
    assert keras_row["vs_torch_ours"] > 0

    table = (tmp_path / "gpu_report.md").read_text()
    for heading in ("## Parity", "## PyTorch: xlm.torch_backend vs transformers", "## Keras 3 on JAX"):
        assert heading in table


def test_gpu_request_without_a_gpu_is_a_one_line_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu", "gpu_bench.py"), "--device", "gpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=_env())
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu_bench: error: --device gpu: PyTorch sees no CUDA GPU") and "JAX sees no GPU" in last
    assert "Traceback" not in proc.stderr and not (tmp_path / "gpu_report.json").exists()
