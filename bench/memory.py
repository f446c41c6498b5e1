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
name, batch, frames, ctx, precision, remat = {name!r}, {batch}, {frames}, {ctx}, {precision!r}, {remat}
overrides = {{"context_frames": ctx}} if ctx else {{}}
step, flops, _ = train_step_fn(name, batch, frames, precision, overrides={{**overrides, "remat": remat}})
step()
t = time.perf_counter()
step()
seconds = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"peak_rss_mb": int(hwm) / 1024, "seconds": seconds}}))
"""


def measure(
    name: str, batch: int, frames: int, context_frames: int | None = None, precision="float32", remat=False
) -> dict:
    code = _CHILD.format(
        root=ROOT, name=name, batch=batch, frames=frames, ctx=context_frames, precision=precision, remat=remat
    )
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


# Paper scale, one sequence of 64 x 64 frames: peak memory is affine in the frame count, so two frame counts give
# the fixed part (runtime, weights, gradients, optimizer slots) and the part per frame, hence per 20-frame sequence.
PAPER_FRAMES = (11, 20)
GPU_GB = (40, 80)


def paper(name="moving_mnist_paper", precisions=("float32", "bfloat16")):
    """Peak memory and step time of one sequence at the paper's widths, with and without remat; and what they imply
    per 20-frame sequence and for the largest per-replica batch on 40 and 80 GB accelerators."""
    records = []
    for precision in precisions:
        for remat in (False, True):
            points = {t: measure(name, 1, t, None, precision, remat) for t in PAPER_FRAMES}
            (t0, a), (t1, b) = sorted(points.items())
            per_frame = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (t1 - t0)
            fixed = a["peak_rss_mb"] - per_frame * t0
            per_sequence = per_frame * 20
            records.append(
                emit(
                    {
                        "bench": f"memory_paper/{name}",
                        "precision": precision,
                        "remat": remat,
                        **{f"peak_rss_mb_{t}_frames": round(points[t]["peak_rss_mb"]) for t in PAPER_FRAMES},
                        **{f"seconds_per_step_{t}_frames": round(points[t]["seconds"], 1) for t in PAPER_FRAMES},
                        "fixed_mb": round(fixed),
                        "per_sequence_20_frames_mb": round(per_sequence),
                        **{
                            f"max_batch_{gb}gb": int((gb * 1024 - fixed) // per_sequence) if per_sequence > 0 else None
                            for gb in GPU_GB
                        },
                        **machine(),
                    }
                )
            )
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--paper", action="store_true", help="only the paper-scale remat rows (slow: ~30 min)")
    args = parser.parse_args(argv)
    if args.paper:
        return paper()
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
