"""Peak memory of a training step, per preset, and how it grows with frames and batch.

Each point runs in a fresh process, building the model and taking two train steps on the visible device
(`bench.common.bench_device`). On a GPU it reads the allocator's peak (`tf.config.experimental.get_memory_info`
after `reset_memory_stats`); on the CPU the process's own high-water mark (VmHWM in /proc/self/status: unlike
`ru_maxrss`, which Linux carries across execve from the parent, it starts afresh with the new address space). Each
record names its `memory_source`. `python -m bench.memory [--full]` prints JSON lines.
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
from bench.common import bench_device, peak_memory_mb, reset_peak_memory
from bench.train_step import train_step_fn
name, batch, frames, ctx, precision, remat = {name!r}, {batch}, {frames}, {ctx}, {precision!r}, {remat}
overrides = {{"context_frames": ctx}} if ctx else {{}}
device = bench_device()
reset_peak_memory(device)
step, flops, _ = train_step_fn(name, batch, frames, precision, overrides={{**overrides, "remat": remat}})
step()
t = time.perf_counter()
step()
seconds = time.perf_counter() - t
peak, source = peak_memory_mb(device)
print(json.dumps({{"peak_rss_mb": peak, "memory_source": source, "device": device, "seconds": seconds}}))
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
        killed = " (killed: out of memory?)" if out.returncode == -9 else ""
        raise RuntimeError(f"{name} batch {batch}, {frames} frames failed{killed}:\n{out.stderr[-2000:]}")
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


# Paper scale, one sequence of 64 x 64 frames. The encoder runs on T - 1 frames and the decoder on T - context ones,
# so peak memory is modelled as F + e * (T - 1) + d * (T - context): F the fixed part (runtime, weights, gradients,
# optimizer slots), e and d the memory per encoded and per decoded frame. Three points solve it. The full 20-frame
# sequence is measured as well where it fits this machine (with remat; without, float32 needs ~19 GB of our 24 and
# was OOM-killed when anything else ran), and then checks the model's prediction.
PAPER_POINTS = {"a": (3, 2), "b": (11, 10), "c": (15, 10)}  # (frames, context frames)
PAPER_FULL = (20, 10)  # the whole sequence (frames, context frames); `FULL` is the --full list above
GPU_GB = (40, 80)


def paper(name="moving_mnist_paper", precisions=("float32", "bfloat16")):
    """Peak memory and step time of one sequence at the paper's widths, with and without remat; the fixed and
    per-sequence (20 frames, 10 context) parts; and the largest per-replica batch they imply on 40 and 80 GB
    accelerators (an estimate: accelerator runtimes differ from the CPU's in workspace and fixed memory)."""
    records = []
    for precision in precisions:
        for remat in (False, True):
            m = {k: measure(name, 1, t, ctx, precision, remat) for k, (t, ctx) in PAPER_POINTS.items()}
            mb = {k: v["peak_rss_mb"] for k, v in m.items()}
            e = (mb["b"] - mb["a"]) / 8  # 10 - 2 more encoded frames, the same one decoded frame
            d = (mb["c"] - mb["b"]) / 4 - e  # 4 more of each
            fixed = mb["a"] - 2 * e - d
            per_sequence = 19 * e + 10 * d
            record = {
                "bench": f"memory_paper/{name}",
                "precision": precision,
                "remat": remat,
                "peak_rss_mb": {f"{t}f/{ctx}c": round(mb[k]) for k, (t, ctx) in PAPER_POINTS.items()},
                "seconds_per_step_15_frames": round(m["c"]["seconds"], 1),
                "mb_per_encoded_frame": round(e),
                "mb_per_decoded_frame": round(d),
                "fixed_mb": round(fixed),
                "per_sequence_20_frames_mb": round(per_sequence),
                "predicted_peak_mb_20_frames": round(fixed + per_sequence),
                **{f"max_batch_{gb}gb": int((gb * 1024 - fixed) // per_sequence) for gb in GPU_GB},
            }
            if remat:
                full = measure(name, 1, *PAPER_FULL, precision, remat)
                record["measured_peak_mb_20_frames"] = round(full["peak_rss_mb"])
                record["seconds_per_step_20_frames"] = round(full["seconds"], 1)
            records.append(emit({**record, **machine()}))
    return records


def gpu_table(records, cores: str = "one core") -> str:
    """The per-accelerator memory table (BENCHMARKS.md) from `paper()`'s records (JSON lines of `--paper`).

    Per 20-frame sequence: without remat, the affine model's 19 e + 10 d; with remat the peak does not follow that
    model (recomputation buffers come and go), so the measured 20-frame peak minus the fixed part of the same
    precision without remat (weights, gradients, optimizer slots and runtime do not depend on remat) stands for one
    sequence: an upper bound, since part of that peak is transient. Largest batch = (memory - fixed) // per sequence.
    `cores` names what the step times ran on (the shipped records ran pinned to one core; `bench.run` passes its own).
    """
    rows = [r for r in records if r.get("bench", "").startswith("memory_paper/")]
    fixed = {(r["bench"], r["precision"]): r["fixed_mb"] for r in rows if not r["remat"]}
    out = [
        "| preset | precision | remat | peak MB, 1 sequence of 20 frames (this CPU) | MB per sequence | fixed MB "
        f"| largest batch per 40 GB | per 80 GB | s/step at 15 frames ({cores}) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f = fixed[r["bench"], r["precision"]]
        if r["remat"]:
            peak, kind = r["measured_peak_mb_20_frames"], "measured"
            per_seq = peak - f
        else:
            peak, kind = r["predicted_peak_mb_20_frames"], "model"
            per_seq = r["per_sequence_20_frames_mb"]
        batches = [int((gb * 1024 - f) // per_seq) for gb in GPU_GB]
        out.append(
            f"| {r['bench'].split('/', 1)[1]} | {r['precision']} | {'yes' if r['remat'] else 'no'} | {peak:,} ({kind}) "
            f"| {per_seq:,} | {f:,} "
            f"| {batches[0]} | {batches[1]} | {r['seconds_per_step_15_frames']} |"
        )
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="only the paper-scale rows, with and without remat (slow: 14 fresh processes at the paper's widths)",
    )
    parser.add_argument(
        "--config",
        default="moving_mnist_paper",
        help="the paper-scale preset for --paper (robot_pushing_paper: the pushing head, 1536 top channels, 3 x 256 "
        "logits, with actions and states)",
    )
    parser.add_argument("--table", metavar="JSONL", help="print the per-accelerator memory table from --paper output")
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(gpu_table([json.loads(line) for line in f if line.startswith("{")]))
        return []
    if args.paper:
        return paper(args.config)
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
                    "memory_source": r["memory_source"],
                    "device": r["device"],
                    **machine(),
                }
            )
        )
    return records


if __name__ == "__main__":
    main()
