"""Sampler speed for `cpu_moving_mnist` at 64x64, batch 16: cached vs naive, and cached vs a teacher-forced pass;
with `--serving`, the latency of served sampling.

Reference points: naive / cached 1000 per generated frame; cached / teacher-forced 5 (1 is the floor: a cached frame
does one teacher-forced decoder pass's arithmetic). The naive sampler is timed on a few rows and scaled to a frame.
`python -m bench.sampling [--batch 16] [--naive_rows 1]`.

`python -m bench.sampling --serving [--workdir pretrained/cpu_moving_mnist]`: the shipped model sampled four ways,
each in a fresh process started one after the other in this run: in-process `Sampler` with XLA and without, and
the `sample` signature of a default export and of an `--xla` export loaded with `tf.saved_model.load`. Each times
batch 1 and 16, 1 and 10 frames after 10 context frames of the test split (first call, which traces and compiles,
reported apart; then the fastest of `--repeats` calls), and the table gives seconds per call and per added frame.
It prints the workers' records as JSON lines (what `bench.run --full` renders), then the table.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import ROOT, emit, interleaved, machine


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu_moving_mnist")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--naive_rows", type=int, default=1)
    parser.add_argument("--xla_only", action="store_true", help="skip the (slow) non-XLA cached sampler")
    parser.add_argument("--groups", type=int, default=None, help="batch groups sampled concurrently (default: cores)")
    parser.add_argument("--serving", action="store_true", help="the served-sampling latency table (see above)")
    parser.add_argument("--workdir", default="pretrained/cpu_moving_mnist", help="--serving: the model to serve")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="--serving: batch sizes")
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 10], help="--serving: frames to generate")
    parser.add_argument("--repeats", type=int, default=2, help="--serving: timed calls per cell after the first")
    parser.add_argument("--table", default=None, help="--serving: also write the markdown table to this file")
    parser.add_argument("--records", default=None, help="--serving: also write the timing records (JSON lines) here")
    parser.add_argument(
        "--compare_export",
        default=None,
        help="--serving: also time this SavedModel's `sample` (e.g. one written by an earlier version of export.py)",
    )
    parser.add_argument("--serving_worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serving_dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serving_worker:
        return _serving_worker(args)
    if args.serving:
        return serving(args)

    import numpy as np
    import tensorflow as tf

    from vpn_tf import build_model, get_config
    from vpn_tf.models.vpn import scale_pixels
    from vpn_tf.sampling import Sampler, frame_seed, naive_frame

    config = get_config(args.config)
    model = build_model(config)
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, (args.batch, config.context_frames, *config.frame_shape)).astype(np.uint8)
    conds = None
    if config.conditional:
        raise SystemExit("bench.sampling times unconditional presets")
    decoder = tf.function(lambda x, c: model.decoder(x, c))
    x = scale_pixels(tf.constant(context[:, -1]), model.compute_dtype)
    records = []
    for jit in (True,) if args.xla_only else (True, False):
        sampler = Sampler(model, "cached", jit=jit, groups=args.groups)
        h, _ = sampler.temporal.run(tf.constant(context), conds)
        seed = frame_seed(tf.constant([0, 1], tf.int64), config.context_frames)
        temp = tf.constant(1.0)
        run = lambda sampler=sampler, h=h, seed=seed, temp=temp: sampler.generate_frame(h, None, seed, temp).numpy()  # noqa: E731
        # The cached frame and the teacher-forced pass are timed in alternation (fastest round of each), so both
        # sides of their ratio see the same machine; the unfused sampler is too slow for more than one round.
        seconds = interleaved(
            {"cached": run, "teacher": lambda h=h: decoder(x, h).numpy()}, repeats=3 if jit else 1, warmup=1
        )
        records.append((jit, seconds["cached"], seconds["teacher"], sampler.groups))

    t = time.perf_counter()
    naive_frame(model, h, None, seed, temp, rows=args.naive_rows)
    naive = (time.perf_counter() - t) * config.height / args.naive_rows

    out = []
    for jit, cached, teacher, groups in records:
        out.append(
            emit(
                {
                    "bench": f"sampling/{args.config}",
                    "batch": args.batch,
                    "xla": jit,
                    "groups": groups,
                    "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "cached_seconds_per_frame": round(cached, 4),
                    "naive_seconds_per_frame_scaled": round(naive, 2),
                    "naive_rows_timed": args.naive_rows,
                    "teacher_forced_decoder_seconds": round(teacher, 4),
                    "naive_over_cached": round(naive / cached, 1),
                    "cached_over_teacher_forced": round(cached / teacher, 2),
                    "reference_points": "naive_over_cached 1000, cached_over_teacher_forced 5",
                    **machine(),
                }
            )
        )
    return out


WAYS = {
    "in_process_xla": "in-process `Sampler` (XLA)",
    "in_process": "in-process `Sampler(jit=False)`",
    "export_default": "`export.py` (default), loaded",
    "export_xla": "`export.py --xla`, loaded",
    "export_compared": "`--compare_export` SavedModel, loaded",
}


def serving(args):
    """Exports the model twice, then times each way of sampling in its own fresh process (see the module doc)."""
    import json
    import subprocess
    import sys
    import tempfile

    import numpy as np

    from datasets import pipelines
    from vpn_tf import exporting, training

    config, model = training.restore_model(args.workdir)
    if config.conditional:
        raise SystemExit("bench.sampling --serving times unconditional models")
    batch = max(args.batches)
    context = next(iter(pipelines.eval_dataset(config, "test", batch).batch(batch)))["video"].numpy()
    context = context[:, : config.context_frames]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "context.npy"), context)
        for way in ("export_default", "export_xla"):
            exporting.export(model, os.path.join(tmp, way, "1"), xla=way == "export_xla", groups=args.groups)
        records = []
        ways = [w for w in WAYS if w != "export_compared" or args.compare_export]
        for way in ways:
            cmd = [sys.executable, "-m", "bench.sampling", "--serving_worker", way, "--workdir", args.workdir]
            if way == "export_compared":
                cmd += ["--compare_export", os.path.abspath(args.compare_export)]
            cmd += ["--batches", *map(str, args.batches), "--frames", *map(str, args.frames)]
            cmd += ["--repeats", str(args.repeats), "--serving_dir", tmp]
            if args.groups:
                cmd += ["--groups", str(args.groups)]
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"bench.sampling: the {way} worker failed:\n{out.stderr[-3000:]}")
            records += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    # Re-printed here: the workers' stdout went to this process, and `bench.run` reads only this one's.
    for record in records:
        emit(record)
    table = serving_table(records, args.batches, args.frames)
    print(table)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")
    if args.records:
        with open(args.records, "w") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    return records


def _serving_worker(args):
    """One way of sampling, in this fresh process: emits one record per (batch, frames)."""
    import numpy as np
    import tensorflow as tf

    way, tmp = args.serving_worker, args.serving_dir
    context = np.load(os.path.join(tmp, "context.npy"))
    if way.startswith("export"):
        path = args.compare_export if way == "export_compared" else os.path.join(tmp, way, "1")
        signature = tf.saved_model.load(path).signatures["sample"]

        def sample(ctx, n):
            out = signature(context=tf.constant(ctx), seed=tf.constant([0, 1]), num_frames=tf.constant(n))
            return out["frames"].numpy()

    else:
        from vpn_tf import training
        from vpn_tf.sampling import Sampler

        _, model = training.restore_model(args.workdir)
        sampler = Sampler(model, "cached", jit=way == "in_process_xla", groups=args.groups)

        def sample(ctx, n):
            return sampler.sample(ctx, n, seed=(0, 1))

    records = []
    for batch in args.batches:
        for frames in args.frames:
            ctx = context[:batch]
            t = time.perf_counter()
            video = sample(ctx, frames)
            first = time.perf_counter() - t
            assert video.shape == (batch, frames, *context.shape[2:]), video.shape
            call = lambda ctx=ctx, frames=frames: sample(ctx, frames)  # noqa: E731
            best = interleaved({"call": call}, repeats=args.repeats, warmup=0)["call"]
            records.append(
                emit(
                    {
                        "bench": "sampling_serving",
                        "way": way,
                        "batch": batch,
                        "frames": frames,
                        "first_call_seconds": round(first, 3),
                        "seconds": round(best, 3),
                        **machine(),
                    }
                )
            )
    return records


def serving_table(records, batches, frames) -> str:
    """Markdown: per way, seconds per call for every (batch, frames) cell and per added frame at each batch
    (difference of the two frame counts), then each way's per-frame time over the in-process XLA sampler's."""
    by = {(r["way"], r["batch"], r["frames"]): r["seconds"] for r in records}
    lo, hi = min(frames), max(frames)
    cells = [(b, f) for b in batches for f in frames]
    head = ["how"] + [f"batch {b}, {f} frame{'s' if f > 1 else ''} (s)" for b, f in cells]
    head += [f"per added frame, batch {b} (s)" for b in batches]
    head += [f"per frame vs in-process XLA, batch {b}" for b in batches]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def per_frame(way, b):
        return (by[way, b, hi] - by[way, b, lo]) / (hi - lo) if hi > lo else by[way, b, hi] / hi

    for way, label in WAYS.items():
        if not any(k[0] == way for k in by):
            continue
        row = [label] + [f"{by[way, b, f]:.3f}" for b, f in cells]
        row += [f"{per_frame(way, b):.3f}" for b in batches]
        row += [f"{per_frame(way, b) / per_frame('in_process_xla', b):.1f}x" for b in batches]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
