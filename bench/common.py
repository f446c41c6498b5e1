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
    import tensorflow as tf

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
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "onednn": onednn_enabled(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (on by default where the CPU has AVX-512;
    TF_ENABLE_ONEDNN_OPTS=0 turns them off)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
