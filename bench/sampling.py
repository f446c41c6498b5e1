"""Sampler speed for `cpu_moving_mnist` at 64x64, batch 16: cached vs naive, and cached vs a teacher-forced pass.

Targets (issue): cached >= 1000x faster than naive per generated frame; a cached frame <= 5x one teacher-forced
decoder pass (~1x is the limit: the same arithmetic). The naive sampler is timed on a few rows and scaled to a frame.
`python -m bench.sampling [--batch 16] [--naive_rows 1]`.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import emit, interleaved, machine


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu_moving_mnist")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--naive_rows", type=int, default=1)
    parser.add_argument("--xla_only", action="store_true", help="skip the (slow) non-XLA cached sampler")
    parser.add_argument("--groups", type=int, default=None, help="batch groups sampled concurrently (default: cores)")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from vpn_tf import build_model, get_config
    from vpn_tf.models.vpn import scale_pixels
    from vpn_tf.sampling import Sampler, frame_seed, naive_frame

    config = get_config(args.config)
    model = build_model(config)
    rng = np.random.default_rng(0)
    s = config.image_size
    context = rng.integers(0, 256, (args.batch, config.context_frames, s, s, config.channels)).astype(np.uint8)
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
    naive = (time.perf_counter() - t) * s / args.naive_rows

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
                    "targets": "naive_over_cached >= 1000, cached_over_teacher_forced <= 5",
                    **machine(),
                }
            )
        )
    return out


if __name__ == "__main__":
    main()
