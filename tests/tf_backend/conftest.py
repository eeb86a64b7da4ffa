"""Fixtures of the Keras-stack tests (helpers live in tf_helpers.py).

The slow fits of test_tf_fit.py (XLA compiles a train step per head; MirroredStrategy needs logical
devices set before TensorFlow starts) run in subprocesses (tf_fit_worker.py). They are started when
the first test of this directory runs, so they overlap with the other tests here instead of adding
to the run time; test_tf_fit.py collects their results.
"""

import json
import os
import sys

import pytest

from xlm_testing import BackgroundRun

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_MODES = ("xla", "mirrored", "mirrored_resize")


class FitWorker(BackgroundRun):
    """A tf_fit_worker.py run in the background; `result()` waits for its JSON line."""

    def __init__(self, mode: str) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        super().__init__([sys.executable, os.path.join(HERE, "tf_fit_worker.py"), mode], env, timeout=900)

    def result(self) -> dict:
        code, out, err = super().result()
        assert code == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="session", autouse=True)
def fit_workers(request):
    """{mode: FitWorker}, started only when test_tf_fit.py's tests are part of the run."""
    wanted = any(os.path.basename(str(item.fspath)) == "test_tf_fit.py" for item in request.session.items)
    workers = {mode: FitWorker(mode) for mode in WORKER_MODES} if wanted else {}
    yield workers
    for worker in workers.values():
        worker.stop()


def pytest_collection_modifyitems(session, config, items):
    """Run test_tf_fit.py last, so its background fits have the rest of the run to finish."""
    fits = [item for item in items if os.path.basename(str(item.fspath)) == "test_tf_fit.py"]
    if fits:
        others = [item for item in items if os.path.basename(str(item.fspath)) != "test_tf_fit.py"]
        items[:] = others + fits


@pytest.fixture(scope="module")
def lm():
    """(config, an LM-head model) with language embeddings, shared by a module's tests."""
    from xlm_testing import tiny_config
    from xlm.tf_backend import TFXLMWithLMHeadModel

    config = tiny_config("multilang")
    return config, TFXLMWithLMHeadModel(config)
