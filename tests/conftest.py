import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from xlm_testing import BackgroundRun  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "keras_backends: holds on every Keras backend; test_keras_backends.py also runs these "
        "tests with KERAS_BACKEND=jax and torch, each in its own process")
    config.addinivalue_line("markers", "tf_only: needs Keras on TensorFlow (graphs, XLA, tf.data, SavedModel)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The other backends' suites are collected last (they run in the background meanwhile);
    TensorFlow-only tests are skipped when Keras runs on another backend."""
    suites = [item for item in items if item.originalname == "test_keras_backend_suite"]
    if suites:
        items[:] = [item for item in items if item.originalname != "test_keras_backend_suite"] + suites
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs Keras on TensorFlow (KERAS_BACKEND={os.environ['KERAS_BACKEND']})")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


def backend_suite(backend: str) -> BackgroundRun:
    """`pytest -m keras_backends tests/` with KERAS_BACKEND=`backend`, in the background from the start of
    the run (it overlaps the rest, as the fit workers do), on one thread."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1",
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "keras_backends",
               "-W", "ignore::UserWarning", here]
    return BackgroundRun(command, env, cwd=os.path.dirname(here))


@pytest.fixture(scope="session", autouse=True)
def backend_suites(request):
    """{backend: BackgroundRun of `backend_suite`}, started only when test_keras_backends.py's suite tests are in the run."""
    wanted = sorted({item.callspec.params["backend"] for item in request.session.items
                     if item.originalname == "test_keras_backend_suite"})
    suites = {backend: backend_suite(backend) for backend in wanted}
    yield suites
    for suite in suites.values():
        suite.stop()
