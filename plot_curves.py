"""Plot learning curves: `python plot_curves.py --run LABEL=WORKDIR [--run ...] --out curves.png [--bound 86.3]`.

Reads each run's TensorBoard logs (train/ and eval/) and draws training (smoothed) and validation curves side by
side; the library part is vpn_tf/curves.py. Needs matplotlib (in requirements.txt).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vpn_tf import cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=WORKDIR (repeatable)")
    parser.add_argument("--out", required=True, help="PNG path")
    parser.add_argument("--tag", default="nats_per_frame", help="scalar to plot (nats_per_dim for pushing)")
    parser.add_argument("--x", default="step", choices=["step", "wall_minutes"])
    parser.add_argument("--bound", type=float, default=None, help="draw a lower-bound line")
    parser.add_argument("--window", type=int, default=10, help="smoothing window (logged points)")
    parser.add_argument("--ymax", type=float, default=None, help="clip the y axis (the first steps' loss is high)")
    parser.add_argument("--title", default=None)
    args = cli.parse_known(parser, argv)
    runs = {}
    for spec in args.run:
        label, sep, workdir = spec.partition("=")
        if not sep or not label or not workdir:
            raise SystemExit(f"error: --run takes LABEL=WORKDIR, got {spec!r}")
        runs[label] = workdir
    from vpn_tf import curves

    ylim = None if args.ymax is None else (0.0, args.ymax)
    try:
        curves.plot_runs(runs, args.out, args.tag, args.x, args.bound, args.window, ylim, args.title)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
