import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "keras_backends: holds on every Keras backend; test_keras_backends.py also runs these "
        "tests with KERAS_BACKEND=jax and torch, each in its own process")
    config.addinivalue_line("markers", "tf_only: needs Keras on TensorFlow (graphs, XLA, tf.data, SavedModel)")


def pytest_collection_modifyitems(config, items):
    """TensorFlow-only tests are skipped when Keras runs on another backend."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs Keras on TensorFlow (KERAS_BACKEND={os.environ['KERAS_BACKEND']})")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)
