"""Which devices a run uses, and how: the distribution strategy, GPU checks, memory growth and TF32.

Every decision here that only a GPU host can exercise is a plain function of the visible devices, so the tests
decide it with the device list monkeypatched (`tf.config.list_physical_devices`); nothing here has run on a GPU.
"""

from __future__ import annotations

import contextlib
import json
import os

import tensorflow as tf


class DeviceError(RuntimeError):
    """The requested devices are not there (or cannot be set up as asked)."""


def visible_gpus() -> list:
    """The physical GPUs TensorFlow sees (none when its CUDA libraries did not load)."""
    return tf.config.list_physical_devices("GPU")


def configure(num_cpu_devices: int = 0, require_gpu: bool = False, memory_growth: bool = False) -> None:
    """Sets up the devices before TensorFlow initialises them; call before building any model.

    Args:
        num_cpu_devices: > 1 splits the CPU into that many logical devices (for testing data parallelism without
            GPUs). Refused when GPUs are visible: the strategy would mirror over the GPUs and ignore them.
        require_gpu: raise `DeviceError` when no GPU is visible (a GPU host whose CUDA libraries failed to load
            would otherwise train on its CPU).
        memory_growth: allocate GPU memory as needed instead of all of it up front (for hosts where several
            processes, e.g. loopback workers, share a GPU).
    """
    gpus = visible_gpus()
    if require_gpu and not gpus:
        raise DeviceError(
            "a GPU was required (--require_gpu) but TensorFlow sees none. Install the GPU build "
            "(pip install -r requirements-gpu.txt, i.e. tensorflow[and-cuda]) and check TensorFlow's log above for "
            "'Cannot dlopen some GPU libraries'"
        )
    if num_cpu_devices > 1:
        if gpus:
            names = ", ".join(g.name for g in gpus)
            raise DeviceError(
                f"--cpu_devices={num_cpu_devices} splits the CPU for testing, but GPUs are visible ({names}) and "
                "the run would mirror over them instead. Drop --cpu_devices, or hide the GPUs with "
                "CUDA_VISIBLE_DEVICES="
            )
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    if memory_growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)


def multi_worker_communication() -> tf.distribute.experimental.CommunicationOptions:
    """NCCL all-reduce across workers when GPUs are present, TensorFlow's automatic choice (ring) otherwise.

    `MultiWorkerMirroredStrategy()` with default options uses NCCL only when told to; at the paper's size a step
    all-reduces ~125 MB of float32 gradients, which NCCL moves GPU to GPU.
    """
    impl = tf.distribute.experimental.CommunicationImplementation
    return tf.distribute.experimental.CommunicationOptions(implementation=impl.NCCL if visible_gpus() else impl.AUTO)


def make_strategy(num_cpu_devices: int = 0) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, else MirroredStrategy over the local devices
    (the GPUs if any, else the CPU's logical devices).

    `num_cpu_devices` > 1 splits the CPU into that many logical devices (`configure`); it must be called before
    TensorFlow initialises its devices.
    """
    if num_cpu_devices > 1:
        configure(num_cpu_devices)
    if os.environ.get("TF_CONFIG") and json.loads(os.environ["TF_CONFIG"]).get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=multi_worker_communication())
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def describe(strategy: tf.distribute.Strategy | None = None) -> str:
    """One line naming the devices a run uses and its replica count (printed by every command)."""
    if strategy is None:  # no distribution: TensorFlow places the ops on the first GPU, else the CPU
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
        return f"devices: {device} (1 replica)"
    extended = strategy.extended
    devices = list(getattr(extended, "worker_devices", ()) or ())
    workers = 1
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.cluster_spec().as_dict():
        workers = len(resolver.cluster_spec().as_dict().get("worker", [])) + len(
            resolver.cluster_spec().as_dict().get("chief", [])
        )
    where = f"{workers} workers, " if workers > 1 else ""
    n = strategy.num_replicas_in_sync
    return f"devices: {', '.join(devices) or '?'} ({where}{n} replica{'s' if n != 1 else ''} in sync)"


@contextlib.contextmanager
def exact_float32():
    """Within the block TensorFloat-32 is off (IEEE float32 matmuls and convolutions), then back as it was: what
    `Sampler` runs under, so that a training run keeps its own TF32 setting around the samples it draws."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def set_tf32(enabled: bool) -> None:
    """TensorFloat-32 for float32 convolutions and matmuls on Ampere and newer GPUs (no effect elsewhere).

    TensorFlow enables it by default: ~10-bit mantissas in float32 matmuls, faster but not exact, so a cached
    sampler would no longer reproduce the teacher-forced conditionals bit for bit. `Sampler` turns it off while it
    samples (`exact_float32`; its videos are seed-exact); training keeps TensorFlow's default unless asked
    (`train.py --tf32 false`).
    """
    tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))
