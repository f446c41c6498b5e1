"""Evaluate a checkpoint: `python evaluate.py --workdir DIR [--split test] [--num_sequences N]`.

Prints the paper's metric (nats/frame for Moving MNIST, with the test set's lower bound; nats/dim otherwise) with its
standard error over the evaluated sequences.
"""

import argparse
import json
import sys

from vpn_tf import cli, commands, stats

# The default model: the shipped grey-input Moving MNIST VPN (RESULTS.md), best on the paper's likelihood. (sample.py's
# default is the binary-input one, whose samples keep their ink.)
SHIPPED_NAME = "cpu_moving_mnist"
DIGIT_READER = commands.shipped("digit_reader")


def main(argv=None):
    commands.quiet_tensorflow()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_checkpoint_flags(parser, default_workdir=f"pretrained/{SHIPPED_NAME}, the grey-input VPN")
    cli.add_split_flag(parser, "the sequences to score")
    parser.add_argument("--num_sequences", type=int, default=None, help="the first N sequences (default: all)")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    parser.add_argument(
        "--against",
        default=None,
        metavar="WORKDIR",
        help="also score another train.py working directory (latest checkpoint) on the same sequences and report "
        "the difference (this model minus that one) with its paired standard error",
    )
    parser.add_argument(
        "--ink",
        type=int,
        default=0,
        metavar="N",
        help="also sample one continuation of the first N sequences and report sampled / true ink per predicted frame",
    )
    cli.add_seed_flag(
        parser, "the samples of --ink, --legibility and --ssim and the binary frames of --binarize_inputs"
    )
    parser.add_argument(
        "--ink_diagnostics",
        action="store_true",
        help="with --ink: also one-step samples from the true context (grey and binarised) and the teacher-forced "
        "expected ink, per predicted frame (vpn_tf.diagnostics.ink_diagnostics: where sampled ink goes missing)",
    )
    parser.add_argument(
        "--per_frame",
        action="store_true",
        help="also the metric of each predicted frame (mean and standard error over the sequences; for Moving MNIST "
        "with each frame's lower bound): where in time the nats are",
    )
    parser.add_argument(
        "--binarize_inputs",
        type=cli.boolean,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="sigmoid (Moving MNIST) models: the network reads binary frames drawn from the grey levels (seeded by "
        "--seed, one draw per sequence) and is scored against the grey levels, what a train.py --binarize_inputs "
        "model trains on. Default false: it reads the grey frames, the paper's metric",
    )
    parser.add_argument(
        "--legibility",
        type=int,
        default=0,
        metavar="N",
        help="Moving MNIST: sample one continuation of the first N sequences and report, per predicted frame, the "
        "fraction a digit reader reads right (beside true frames, binarised true frames and chance) and how well "
        "the samples track the truth (beside the last context frame held still)",
    )
    parser.add_argument(
        "--ssim",
        type=int,
        default=0,
        metavar="N",
        help="sample --best_of continuations of the first N sequences and report, per predicted frame, the SSIM of "
        "the best one and their mean with the true frame, beside the last context frame held still (any data)",
    )
    parser.add_argument(
        "--best_of",
        type=int,
        default=8,
        metavar="K",
        help="the continuations per sequence of --ssim (default 8; continuation s draws with seed (SEED, s))",
    )
    parser.add_argument(
        "--reader",
        default=DIGIT_READER,
        help="the digit reader's directory for --legibility (default pretrained/digit_reader)",
    )
    cli.add_data_flags(parser)
    args = cli.parse_known(parser, argv)
    if args.ink_diagnostics and not args.ink:
        raise SystemExit("error: --ink_diagnostics needs --ink N (the sequences to sample)")
    for flag in ("ink", "legibility", "ssim"):
        if getattr(args, flag) < 0:
            raise SystemExit(f"error: --{flag} must be >= 0 (sequences to sample). Received: {getattr(args, flag)}")
    if args.best_of < 1:
        raise SystemExit(f"error: --best_of must be >= 1 (continuations per sequence). Received: {args.best_of}")

    args.workdir = commands.workdir_or_shipped(args.workdir, SHIPPED_NAME)
    args.binary_seed = args.seed if args.binarize_inputs else None

    pipelines = commands.data_module("pipelines")
    from vpn_tf import devices, diagnostics, training

    try:
        config, model = commands.restore(args.workdir, args.checkpoint)
        print(devices.describe(), file=sys.stderr)
        config = cli.with_data_flags(config, args)
        args.split = commands.resolve_split(config, args.split)
        if args.binarize_inputs and config.output != "sigmoid":
            raise ValueError(f"--binarize_inputs is for sigmoid (grey-level) models; {args.workdir} has a softmax")
        ds = pipelines.eval_dataset(config, args.split, args.num_sequences, binary_seed=args.binary_seed)
        metrics = training.evaluate(config, model, ds, args.batch_size, progress=True)
        if args.binarize_inputs:
            metrics["binary_inputs_seed"] = args.seed
        print("\n".join(training.summary_lines(config, args.split, metrics)))
        if args.per_frame:
            metrics["per_frame"] = training.per_frame_report(config, model, ds, args.batch_size)
            print("\n".join(training.per_frame_lines(config, metrics["per_frame"])))
        if args.against:
            metrics["against"] = _against(config, model, ds, args)
        first = config.context_frames + 1
        if args.ink:
            batch = _first_batch(pipelines.eval_dataset(config, args.split, args.ink), args.ink)
            report = diagnostics.ink_report(
                model, batch.pop("video"), (args.seed, 0), diagnose=args.ink_diagnostics, **batch
            )
            metrics.update(report)
            print("\n".join(diagnostics.ink_lines(report, first, args.ink)))
        if args.legibility:
            report = _sample_report(config, model, args)
            metrics["samples"] = {"sequences": args.legibility, "seed": [args.seed, 0], **report}
            print("\n".join(diagnostics.sample_report_lines(report, first, args.legibility)))
        if args.ssim:
            batch = _first_batch(pipelines.eval_dataset(config, args.split, args.ssim), args.ssim)
            report = diagnostics.ssim_report(model, batch.pop("video"), args.best_of, args.seed, **batch)
            metrics["ssim"] = {"sequences": args.ssim, "seed": args.seed, **report}
            print("\n".join(diagnostics.ssim_lines(report, first, args.ssim)))
    except (training.TrainingError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    if args.json:
        # Serialised before the file opens: nothing half-written if it fails.
        text = json.dumps(stats.for_json({"split": args.split, **metrics}), indent=2, allow_nan=False)
        with open(args.json, "w") as f:
            f.write(text)


def _first_batch(ds, n):
    """The first n sequences as numpy arrays: {"video", and "actions" / "states" when there}."""
    return {k: v.numpy() for k, v in next(iter(ds.batch(n))).items() if k in ("video", "actions", "states")}


def _against(config, model, ds, args):
    from vpn_tf import training

    pipelines = commands.data_module("pipelines")
    from vpn_tf.config import incomparable

    try:
        other_config, other = commands.restore(args.against)
    except (training.TrainingError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: --against: {e}") from None
    other_config = cli.with_data_flags(other_config, args)
    differ = incomparable(config, other_config)
    if differ:
        raise SystemExit(f"error: --against {args.against}: not comparable on the same sequences ({'; '.join(differ)})")
    other_ds = pipelines.eval_dataset(other_config, args.split, args.num_sequences, binary_seed=args.binary_seed)
    try:
        result = training.compare(config, model, ds, other_config, other, other_ds, args.batch_size)
    except ValueError as e:
        raise SystemExit(f"error: --against {args.against}: {e}") from None
    name, diff, stderr = training.metric_name(config), result["difference"], result["difference_stderr"]
    print(
        f"minus {other_config.name} ({args.against}, {result[name]:.3f}): {diff:+.4f} {training.unit(config)} "
        f"(paired standard error {stderr:.4f}" + (f", {diff / stderr:+.1f} SE)" if stderr > 0 else ")")
    )
    return {"workdir": args.against, "name": other_config.name, **result}


def _sample_report(config, model, args):
    """Moving MNIST: with the digit reader's legibility; other data: tracking and ink only."""
    from vpn_tf import diagnostics
    from vpn_tf.models.digit_reader import DigitReader

    pipelines = commands.data_module("pipelines")
    try:
        digits = config.dataset == "moving_mnist" and config.frame_shape == (64, 64, 1)  # what the reader reads
        reader = DigitReader.load(args.reader) if digits else None
        classes = pipelines.digit_classes(config, args.split, args.legibility) if reader else None
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: --legibility: {e}") from None
    batch = _first_batch(pipelines.eval_dataset(config, args.split, args.legibility), args.legibility)
    return diagnostics.sample_report(model, batch.pop("video"), (args.seed, 0), reader=reader, classes=classes, **batch)


if __name__ == "__main__":
    main()
