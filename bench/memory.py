"""Peak resident memory of a training step, per preset, and how it grows with frames and batch.

Each point runs in a fresh process, building the model and taking two float32 train steps, and reads the process's
own high-water mark (VmHWM in /proc/self/status: unlike `ru_maxrss`, which Linux carries across execve from the
parent, it starts afresh with the new address space). `python -m bench.memory [--full]` prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench.common import ROOT, emit, machine

_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
import time
from bench.train_step import train_step_fn
name, batch, frames, ctx = {name!r}, {batch}, {frames}, {ctx}
overrides = {{"context_frames": ctx}} if ctx else None
step, flops, _ = train_step_fn(name, batch, frames, overrides=overrides)
step()
t = time.perf_counter()
step()
seconds = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"peak_rss_mb": int(hwm) / 1024, "seconds": seconds}}))
"""


def measure(name: str, batch: int, frames: int, context_frames: int | None = None) -> dict:
    code = _CHILD.format(root=ROOT, name=name, batch=batch, frames=frames, ctx=context_frames)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


QUICK = [
    ("cpu_moving_mnist", 2, 20, None),
    ("cpu_moving_mnist", 4, 20, None),
    ("cpu_moving_mnist", 4, 12, None),
]
FULL = QUICK + [
    ("cpu_moving_mnist", 8, 20, None),
    ("cpu_moving_mnist", 4, 28, None),
    ("moving_mnist_paper", 1, 3, 2),
    ("moving_mnist_paper", 1, 4, 2),
    ("moving_mnist_paper", 2, 3, 2),
    ("robot_pushing_paper", 1, 3, 2),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    records = []
    for name, batch, frames, ctx in FULL if args.full else QUICK:
        r = measure(name, batch, frames, ctx)
        records.append(
            emit(
                {
                    "bench": f"memory/{name}",
                    "batch": batch,
                    "frames": frames,
                    "context_frames": ctx,
                    "peak_rss_mb": round(r["peak_rss_mb"]),
                    **machine(),
                }
            )
        )
    return records


if __name__ == "__main__":
    main()
