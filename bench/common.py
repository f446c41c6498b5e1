"""Shared helpers for the benchmark scripts: timing, JSON-lines output, machine description.

Benchmarks report ratios measured side by side in one process (the machines are shared and noisy); absolute
times are printed for context, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def emit(record: dict) -> dict:
    """Prints one JSON line (the benchmark's result) and returns it."""
    print(json.dumps(record, sort_keys=True), flush=True)
    return record


def timeit(fn, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds per call of `fn()` after `warmup` calls (fn must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def interleaved(fns: dict, repeats: int = 3, warmup: int = 1) -> dict:
    """Minimum seconds per call of each `fns[name]()`, calling them in turn `repeats` times after `warmup` rounds.

    For ratios on a shared machine: every round gives each function the same machine conditions, and the minimum
    discards the rounds another tenant slowed down (interference only ever adds time).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def bench_device() -> str:
    """The device a single-device benchmark runs on: the first GPU when TensorFlow sees one, else the CPU."""
    import tensorflow as tf

    return "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"


def reset_peak_memory(device: str) -> None:
    """Starts a fresh peak-memory reading on a GPU (a process's host peak cannot be reset: it starts afresh with
    each new process, which is why `bench.memory` measures each point in its own)."""
    import tensorflow as tf

    if device.startswith("/gpu"):
        tf.config.experimental.reset_memory_stats(device.lstrip("/").upper())


def peak_memory_mb(device: str) -> tuple[float, str]:
    """(peak MB, where it was read): the GPU allocator's peak since `reset_peak_memory` on a GPU, else the
    process's resident high-water mark (VmHWM) on the host."""
    import tensorflow as tf

    if device.startswith("/gpu"):
        return tf.config.experimental.get_memory_info(device.lstrip("/").upper())["peak"] / 2**20, "gpu_allocator_peak"
    with open("/proc/self/status") as f:
        hwm = [line for line in f if line.startswith("VmHWM:")][0].split()[1]
    return int(hwm) / 1024, "host_vmhwm"


def machine() -> dict:
    """The machine and software a record was measured on (every benchmark record carries it, and BENCHMARKS.md's
    header is built from it). Cheap: /proc and sysconf reads, plus TensorFlow, which every benchmark imports anyway."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        # The cores this process may run on: fewer than `cores` under `taskset` or a cgroup cpuset, and the
        # timings depend on these, not on the host's count.
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "onednn": onednn_enabled(),
        # TensorFlow decides oneDNN from the CPU unless this is set, so the header says which of the two it was.
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "gpus": [d.name for d in gpus],
        "gpu_models": [_gpu_model(tf, d) for d in gpus],
    }


def _gpu_model(tf, device) -> str:
    """The GPU's model name (e.g. "NVIDIA A100-SXM4-40GB"), or its device name where TensorFlow gives no details."""
    try:
        return tf.config.experimental.get_device_details(device).get("device_name", device.name)
    except Exception:  # builds and device kinds without details; the name still identifies the device
        return device.name


def memory_gib() -> float | None:
    """The host's physical memory in GiB (MemTotal of /proc/meminfo; sysconf where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (on by default where the CPU has AVX-512;
    TF_ENABLE_ONEDNN_OPTS=0 turns them off)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
