"""Export a trained VPN as a SavedModel for TF Serving:
`python export.py --workdir DIR --export_dir BASE/NAME/VERSION [--xla]`.

Signatures `sample`, `log_prob` and `serving_default` (= sample); see vpn_tf/exporting.py, and
docs/sampling_and_serving.md for the REST requests. `--untrained --config PRESET` exports freshly initialised
weights (for trying out serving).
"""

import argparse
import json
import os
import subprocess
import sys

from vpn_tf import cli, commands
from vpn_tf.presets import preset_names


def main(argv=None):
    commands.quiet_tensorflow()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_checkpoint_flags(parser)
    parser.add_argument("--export_dir", required=True, help="TF Serving layout: BASE/MODEL_NAME/VERSION (a number)")
    cli.add_xla_flag(parser, "XLA-compile the sampler's pixel loop (latency with and without: BENCHMARKS.md, serving)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature baked into `sample`")
    parser.add_argument(
        "--serving_device",
        default="cpu",
        choices=["cpu", "gpu"],
        help="what the server runs on (default cpu). gpu: one row group (--groups 1) unless told otherwise",
    )
    parser.add_argument(
        "--groups",
        type=int,
        default=None,
        help="row groups whose pixel loops `sample` runs concurrently: the server's cores on a CPU server (default: "
        "this machine's usable cores, <= 8), 1 on a GPU server (more only multiplies its kernel launches per pixel)",
    )
    parser.add_argument("--untrained", action="store_true", help="export fresh weights of --config instead")
    parser.add_argument(
        "--config", default=None, choices=preset_names(), metavar="PRESET", help="preset for --untrained"
    )
    args = cli.parse_known(parser, argv)
    if not os.path.basename(os.path.normpath(args.export_dir)).isdigit():
        raise SystemExit(
            f"error: --export_dir must end in a numeric version directory (TF Serving); got {args.export_dir}"
        )
    if args.temperature <= 0:
        raise SystemExit(f"error: --temperature must be > 0; got {args.temperature}")
    if args.groups is not None and args.groups < 1:
        raise SystemExit(f"error: --groups must be >= 1; got {args.groups}")

    if args.serving_device == "gpu":
        if args.groups is None:
            args.groups = 1
        elif args.groups > 1:
            print(
                f"warning: --groups {args.groups} with --serving_device gpu: a GPU runs the batch as one loop; "
                f"{args.groups} groups launch {args.groups}x the kernels per pixel. Use --groups 1",
                file=sys.stderr,
            )
        if args.xla:
            print(
                "warning: TF Serving's GPU images have failed to run XLA-marked SavedModels ('Could not find "
                "compiler for platform CUDA', tensorflow/serving#2214, #2217); try the export on your server first",
                file=sys.stderr,
            )

    from vpn_tf import build_model, exporting, get_config, training

    try:
        if args.untrained:
            if not args.config:
                raise SystemExit("error: --untrained needs --config PRESET")
            model = build_model(get_config(args.config))
            print(f"untrained {args.config} (fresh weights)", file=sys.stderr)
        elif args.workdir:
            _, model = commands.restore(args.workdir, args.checkpoint)
        else:
            raise SystemExit("error: pass --workdir DIR (or --untrained --config PRESET)")
        path = exporting.export(model, args.export_dir, xla=args.xla, temperature=args.temperature, groups=args.groups)
    except (training.TrainingError, ValueError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    with open(os.path.join(path, "assets.extra", "vpn_tf_export.json")) as f:
        baked = json.load(f)
    print(f"SavedModel written to {path} (`sample` runs {baked['groups']} row group(s); xla={baked['xla']})")
    cmd = ["saved_model_cli", "show", "--dir", path, "--tag_set", "serve", "--signature_def", "sample"]
    try:
        print(subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout)
    except (OSError, subprocess.TimeoutExpired):
        pass


if __name__ == "__main__":
    main()
