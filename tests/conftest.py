import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# With a pytest-xdist worker per core, each worker's TensorFlow (and every process a test starts, which inherits
# this) runs its kernels on one thread: TensorFlow's default of one thread per core in every worker oversubscribes
# the cores, and its pool threads spin while they wait. Set TF_NUM_INTRAOP_THREADS=0 for TensorFlow's default.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= len(os.sched_getaffinity(0)) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
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
    that only read it (evaluate.py, sample.py, export.py, benchmarks); each name is trained once per test session."""
    from tests.scripts import run_script
    from tests.shared_results import once_per_session

    def train(workdir, flags):
        args = ("--config", "tiny", "--no_progress", "--steps", "1", "--no_samples", "--workdir", workdir)
        run_script("train.py", *args, *flags, check=True)

    def get(name, *flags):
        key = "-".join(("trained", name, *flags)).replace("/", "_")
        return once_per_session(tmp_path_factory, key, lambda workdir: train(workdir, flags))

    return get
