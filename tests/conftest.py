import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests import `datasets`, `vpn_tf` and the CLIs from the repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Exactness checks (cached == naive bytes, conditionals to 1e-5) assume IEEE float32: no TensorFloat-32 on Ampere+.
tf.config.experimental.enable_tensor_float_32_execution(False)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): one worker per usable core, at most 4. Each worker is a process of its own with
    TensorFlow loaded (~1 GB), and most tests are small kernels dominated by Python, so more cores than workers
    gain little while memory grows with every worker."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def pytest_collection_modifyitems(config, items):
    """The large tests first, each group in file order. (With `--dist worksteal` each worker starts on a contiguous
    slice of this order and a worker that runs out takes the back half of another's queue; CI's single run of every
    test was timed with this order.)"""
    items.sort(key=lambda item: item.get_closest_marker("large") is None)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts from the float32 policy and a fixed seed."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`trained(name, *flags)`: a `tiny` run that train.py trained for one step (with FLAGS), shared by the tests
    that only read it (evaluate.py, sample.py, export.py, benchmarks); each name is trained once per test process."""
    from tests.scripts import run_script

    runs = {}

    def get(name, *flags):
        key = (name, *flags)
        if key not in runs:
            workdir = tmp_path_factory.mktemp(name)
            run_script(
                "train.py",
                "--config",
                "tiny",
                "--no_progress",
                "--steps",
                "1",
                "--no_samples",
                "--workdir",
                workdir,
                *flags,
                check=True,
            )
            runs[key] = workdir
        return runs[key]

    return get
