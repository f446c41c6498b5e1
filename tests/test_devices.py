"""Device decisions. No GPU here: the decisions are functions of the visible devices, monkeypatched."""

import json

import pytest
import tensorflow as tf

from vpn_tf import devices

FAKE_GPUS = [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]


@pytest.fixture
def with_gpus(monkeypatch):
    real = tf.config.list_physical_devices

    def listed(device_type=None):
        return list(FAKE_GPUS) if device_type == "GPU" else real(device_type)

    monkeypatch.setattr(tf.config, "list_physical_devices", listed)
    return FAKE_GPUS


def test_require_gpu_fails_without_one_and_passes_with_one(monkeypatch):
    assert not devices.visible_gpus()  # this test suite runs on CPU hosts
    with pytest.raises(devices.DeviceError, match=r"--require_gpu.*sees none.*tensorflow\[and-cuda\]"):
        devices.configure(require_gpu=True)
    monkeypatch.setattr(devices, "visible_gpus", lambda: FAKE_GPUS)
    devices.configure(require_gpu=True)


def test_cpu_devices_are_refused_when_gpus_are_visible(with_gpus):
    with pytest.raises(devices.DeviceError, match=r"--cpu_devices=2 .* GPUs are visible \(/physical_device:GPU:0\)"):
        devices.configure(num_cpu_devices=2)


def test_memory_growth_is_set_on_every_gpu(with_gpus, monkeypatch):
    calls = []
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda gpu, on: calls.append((gpu.name, on)))
    devices.configure(memory_growth=True)
    assert calls == [("/physical_device:GPU:0", True)]
    calls.clear()
    devices.configure()
    assert calls == []


def test_multi_worker_all_reduce_is_nccl_with_gpus_and_auto_without(monkeypatch):
    impl = tf.distribute.experimental.CommunicationImplementation
    assert devices.multi_worker_communication().implementation == impl.AUTO
    monkeypatch.setattr(devices, "visible_gpus", lambda: FAKE_GPUS)
    assert devices.multi_worker_communication().implementation == impl.NCCL

    # make_strategy hands those options to MultiWorkerMirroredStrategy when TF_CONFIG names a cluster.
    seen = {}

    class Recorder:
        def __init__(self, communication_options=None):
            seen["options"] = communication_options

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", Recorder)
    cluster = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    devices.make_strategy()
    assert seen["options"].implementation == impl.NCCL


def test_describe_names_the_devices_and_replicas():
    line = devices.describe(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert line.startswith("devices: ") and "CPU:0" in line and "(1 replica in sync)" in line
    assert "CPU:0" in devices.describe() and devices.describe().endswith("(1 replica)")


def test_tf32_switch_sets_tensorflows_flag():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        devices.set_tf32(True)
        assert tf.config.experimental.tensor_float_32_execution_enabled()
        devices.set_tf32(False)
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        devices.set_tf32(before)


def test_the_gpu_install_pins_the_same_tensorflow():
    from tests.scripts import ROOT

    def pins(path):
        return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]

    cpu = [p for p in pins(f"{ROOT}/requirements.txt") if p.startswith("tensorflow==")]
    gpu = pins(f"{ROOT}/requirements-gpu.txt")
    assert "-r requirements.txt" in gpu
    assert [p.replace("[and-cuda]", "") for p in gpu if p.startswith("tensorflow[")] == cpu
    assert f'gpu = ["{cpu[0].replace("tensorflow", "tensorflow[and-cuda]")}"]' in open(f"{ROOT}/pyproject.toml").read()


@pytest.mark.large
def test_train_py_require_gpu_fails_clearly_and_prints_the_devices_it_uses(tmp_path):
    from tests.scripts import run_script

    out = run_script("train.py", "--config", "tiny", "--no_progress", "--workdir", tmp_path, "--require_gpu")
    assert out.returncode != 0 and "a GPU was required (--require_gpu) but TensorFlow sees none" in out.stderr
    assert not (tmp_path / "checkpoints").exists()
    out = run_script(
        "train.py",
        "--config",
        "tiny",
        "--no_progress",
        "--workdir",
        tmp_path / "ok",
        "--steps",
        "1",
        "--xla_gating",
        "false",
        "--tf32",
        "no",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tiny: devices: " in out.stderr and "CPU:0 (1 replica in sync)" in out.stderr
    out = run_script("train.py", "--config", "tiny", "--workdir", tmp_path / "bad", "--xla_gating", "maybe")
    assert out.returncode != 0 and "--xla_gating" in out.stderr and "true/false, yes/no, 1/0" in out.stderr
    out = run_script("train.py", "--config", "tiny", "--workdir", tmp_path / "bad", "--remat", "maybe")
    assert out.returncode != 0 and "--remat expects true/false, yes/no or 1/0, got 'maybe'" in out.stderr


def test_sampling_runs_without_tf32_and_leaves_the_setting_as_it_was(monkeypatch):
    import numpy as np

    import vpn_tf
    from vpn_tf.sampling import Sampler

    config = vpn_tf.get_config("tiny")
    model = vpn_tf.build_model(config)
    ctx = np.zeros((1, 2, *config.frame_shape), np.uint8)
    seen = []
    real = tf.config.experimental.enable_tensor_float_32_execution
    monkeypatch.setattr(
        tf.config.experimental, "enable_tensor_float_32_execution", lambda on: seen.append(on) or real(on)
    )
    devices.set_tf32(True)
    try:
        Sampler(model, jit=False).sample(ctx, 1)
        assert seen[1:] == [False, True]  # off while sampling, then back to what training had
        assert tf.config.experimental.tensor_float_32_execution_enabled()
        seen.clear()
        Sampler(model, jit=False, tf32=True).sample(ctx, 1)
        assert seen == []
    finally:
        devices.set_tf32(False)
