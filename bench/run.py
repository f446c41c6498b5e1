"""The benchmark suite: `python -m bench.run` (quick, a few minutes) or `python -m bench.run --full`.

Runs every benchmark, prints their JSON lines and writes BENCHMARKS.md (tables, machine, exact commands).
Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

from bench.common import ROOT, machine


def _run(module: str, *args: str, env: dict | None = None) -> list[dict]:
    """Runs one benchmark in its own process (no state carried between them); returns its JSON lines."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    cmd = [sys.executable, "-m", f"bench.{module}", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for r in records:
        print(json.dumps(r, sort_keys=True), flush=True)
    return records


def _table(rows, columns):
    out = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for _, k in columns) + " |")
    return "\n".join(out)


def _memory_paper_text(records):
    from bench.memory import gpu_table

    return (
        "Peak resident memory, fresh process each, one core; the derivation is in `bench/memory.py`.\n\n"
        + gpu_table(records)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also paper widths, precisions, memory sweeps")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args(argv)

    paper = ["--config", "moving_mnist_paper", "--batch", "1", "--frames", "3", "--context_frames", "2"]
    steps = _run("train_step")
    steps += _run("train_step", "--precision", "bfloat16")
    if args.full:
        steps += _run("train_step", "--jit", "--repeats", "1")
        steps += _run("train_step", *paper, "--repeats", "4")
        steps += _run("train_step", *paper, "--repeats", "4", "--precision", "bfloat16")
        steps += _run("train_step", *paper, "--repeats", "1", "--jit")
    samp = _run("sampling", "--batch", "16")
    dat = _run("data", "--batches", "20")
    mem = _run("memory", *(["--full"] if args.full else []))
    mem_paper = _run("memory", "--paper") if args.full else []

    m = machine()
    command = "python -m bench.run" + (" --full" if args.full else "")
    text = f"""# Benchmarks

Measured by `{command}` on {datetime.date.today().isoformat()}: {m["cpu"]}, {m["cores"]} cores, TensorFlow
{m["tensorflow"]}, Python {m["python"]}, no GPU. Every figure is from that one run; ratios compare quantities
measured side by side in the same process. The machine is shared, so absolute times vary between runs.

## Training step: FLOP utilisation

Achieved GFLOP/s = analytic training FLOPs per step (convolutions, forward x 3; formula in `bench/train_step.py`
and `vpn_tf/cost.py`) / step time. The reference is a 3x3 convolution c -> 4c (the multiplicative unit's fused
gates), forward + backward, on the same number of frames and in the same precision, timed in the same process in
alternation with the step (rounds of equal length, fastest round of each).
Targets: utilisation >= 0.80 at paper widths (c = 128), >= 0.60 at `cpu_moving_mnist`'s (c = 16).

{
        _table(
            steps,
            [
                ("config", "bench"),
                ("batch", "batch"),
                ("frames", "frames"),
                ("precision", "precision"),
                ("XLA step", "xla"),
                ("s/step", "seconds_per_step"),
                ("seq/s", "sequences_per_second"),
                ("TFLOP/step", "tflop_per_step"),
                ("achieved GFLOP/s", "achieved_gflops"),
                ("conv micro GFLOP/s", "conv3x3_c_to_4c_microbenchmark_gflops"),
                ("utilisation", "utilisation"),
            ],
        )
    }

## Sampling (`cpu_moving_mnist`, 64 x 64)

{
        _table(
            samp,
            [
                ("batch", "batch"),
                ("XLA pixel loop", "xla"),
                ("batch groups", "groups"),
                ("XLA_FLAGS", "xla_flags"),
                ("cached s/frame", "cached_seconds_per_frame"),
                ("naive s/frame (scaled)", "naive_seconds_per_frame_scaled"),
                ("teacher-forced decoder s", "teacher_forced_decoder_seconds"),
                ("naive / cached", "naive_over_cached"),
                ("cached / teacher-forced", "cached_over_teacher_forced"),
            ],
        )
    }

Targets: naive / cached >= 1000, cached / teacher-forced <= 5.

## Data

{
        _table(
            [d for d in dat if d["bench"] == "data/moving_mnist_stream"],
            [
                ("stream seq/s", "stream_sequences_per_s"),
                ("training consumes seq/s", "training_consumes_sequences_per_s"),
                ("ratio", "ratio"),
                ("target", "target_ratio"),
            ],
        )
    }

{
        _table(
            [d for d in dat if d["bench"] == "data/pushing_sim"],
            [
                ("pushing simulator frames/s (one core)", "frames_per_second_one_core"),
                ("target", "target_frames_per_second_per_core"),
            ],
        )
    }

## Memory: peak resident memory of a float32 training step (fresh process each)

{
        _table(
            mem,
            [
                ("config", "bench"),
                ("batch", "batch"),
                ("frames", "frames"),
                ("context", "context_frames"),
                ("peak RSS MB", "peak_rss_mb"),
            ],
        )
    }

{
        "## Memory at paper scale (`moving_mnist_paper`, one 20-frame sequence; `python -m bench.memory --paper`)"
        if mem_paper
        else ""
    }

{_memory_paper_text(mem_paper) if mem_paper else ""}
"""
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
