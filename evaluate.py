"""Evaluate a checkpoint: `python evaluate.py --workdir DIR [--split test] [--num_sequences N]`.

Prints the paper's metric (nats/frame for Moving MNIST, with the test set's lower bound; nats/dim otherwise) with its
standard error over the evaluated sequences.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # our `datasets/`, not Hugging Face's

from vpn_tf import cli  # noqa: E402

# The default model: the shipped grey-input Moving MNIST VPN (RESULTS.md), best on the paper's likelihood. (sample.py's
# default is the binary-input one, whose samples keep their ink.)
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "cpu_moving_mnist")
DIGIT_READER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "digit_reader")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workdir",
        default=SHIPPED,
        help="a train.py working directory (default: the shipped grey-input VPN, pretrained/cpu_moving_mnist)",
    )
    parser.add_argument("--checkpoint", default=None, help="a checkpoint path (default: the latest in --workdir)")
    parser.add_argument("--split", default="test", help="test (default), validation, test_seen, test_novel")
    parser.add_argument("--num_sequences", type=int, default=None, help="the first N sequences (default: all)")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--data_dir", default=None, help="override the config's data_dir (pushing data)")
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
    parser.add_argument("--seed", type=int, nargs=2, default=(0, 0), help="sampling seed for --ink and --legibility")
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
        "--binary_inputs",
        type=int,
        default=None,
        metavar="SEED",
        help="sigmoid (Moving MNIST) models: the network reads binary frames drawn from the grey levels with this "
        "seed and is scored against the grey levels (what a --binarize_inputs model trains on; one draw per "
        "sequence). Default: it reads the grey frames, the paper's metric",
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
        "--reader",
        default=DIGIT_READER,
        help="the digit reader's directory for --legibility (default pretrained/digit_reader)",
    )
    args = cli.parse_known(parser, argv)

    import numpy as np

    from datasets import pipelines
    from vpn_tf import devices, training
    from vpn_tf.stats import mean_and_stderr

    try:
        config, model = training.restore_model(args.workdir, args.checkpoint)
        print(f"{config.name} from {args.checkpoint or args.workdir}; {devices.describe()}", file=sys.stderr)
        if args.data_dir:
            config = config.replace(data_dir=args.data_dir)
        if args.binary_inputs is not None and config.output != "sigmoid":
            raise ValueError(f"--binary_inputs is for sigmoid (grey-level) models; {args.workdir} has a softmax")
        ds = pipelines.eval_dataset(config, args.split, args.num_sequences, binary_seed=args.binary_inputs)
        metrics = training.evaluate(config, model, ds, args.batch_size, progress=True)
    except (training.TrainingError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    name = training.metric_name(config)
    line = f"{config.name} {args.split}: {metrics[name]:.3f} {name.replace('_per_', '/')}"
    line += f" (standard error {metrics[name + '_stderr']:.3f}, {metrics['count']} sequences)"
    if "lower_bound" in metrics:
        line += f"; lower bound {metrics['lower_bound']:.2f}"
    if args.binary_inputs is not None:
        line += f"; the network read binary frames drawn with seed {args.binary_inputs}"
        metrics["binary_inputs_seed"] = args.binary_inputs
    print(line)
    if f"{name}_channel" in metrics:
        per = zip("RGB", metrics[f"{name}_channel"], metrics[f"{name}_channel_stderr"], strict=False)
        print("per colour: " + ", ".join(f"{k} {m:.3f} (se {e:.3f})" for k, m, e in per))
    if args.per_frame:
        values = training.per_frame_values(config, model, ds, args.batch_size)
        n_ctx = config.context_frames
        rows = {"frame": list(range(n_ctx + 1, n_ctx + 1 + values.shape[1]))}
        means, spread = mean_and_stderr(values, axis=0)
        rows["mean"] = [float(v) for v in means]
        rows["stderr"] = [None if np.isnan(v) else float(v) for v in spread]  # None (JSON null): one sequence
        if config.output == "sigmoid":
            bound = _per_frame_lower_bound(ds, n_ctx)
            rows["lower_bound"] = [float(v) for v in bound]
        metrics["per_frame"] = rows
        print(
            f"per predicted frame ({name.replace('_per_', '/')}, mean +- standard error"
            + (", lower bound" if "lower_bound" in rows else "")
            + "):"
        )
        for t, frame in enumerate(rows["frame"]):
            se = f" +- {rows['stderr'][t]:.3f}" if rows["stderr"][t] is not None else ""
            bound_text = f"  (bound {rows['lower_bound'][t]:.2f})" if "lower_bound" in rows else ""
            print(f"  frame {frame}: {rows['mean'][t]:.3f}{se}{bound_text}")
    if args.against:
        try:
            other_config, other = training.restore_model(args.against)
        except (training.TrainingError, ValueError, FileNotFoundError) as e:
            raise SystemExit(f"error: --against: {e}") from None
        if args.data_dir:
            other_config = other_config.replace(data_dir=args.data_dir)
        _check_comparable(config, other_config, args.against)
        mine = training.per_sequence_values(config, model, ds, args.batch_size)
        theirs = training.per_sequence_values(
            other_config,
            other,
            pipelines.eval_dataset(other_config, args.split, args.num_sequences, binary_seed=args.binary_inputs),
            args.batch_size,
        )
        try:
            diff, stderr = training.paired_difference(mine, theirs)
        except ValueError as e:
            raise SystemExit(f"error: --against {args.against}: {e}") from None
        metrics["against"] = {
            "workdir": args.against,
            "name": other_config.name,
            name: float(theirs.mean()),
            "difference": diff,
            "difference_stderr": stderr,
        }
        print(
            f"minus {other_config.name} ({args.against}, {theirs.mean():.3f}): {diff:+.4f} "
            f"{name.replace('_per_', '/')} (paired standard error {stderr:.4f}"
            + (f", {diff / stderr:+.1f} SE)" if stderr > 0 else ")")
        )
    if args.ink_diagnostics and not args.ink:
        raise SystemExit("error: --ink_diagnostics needs --ink N (the sequences to sample)")
    if args.ink:
        from vpn_tf.diagnostics import ink_diagnostics, ink_ratio
        from vpn_tf.sampling import Sampler

        batch = next(iter(pipelines.eval_dataset(config, args.split, args.ink).batch(args.ink)))
        video, n_ctx = batch["video"].numpy(), config.context_frames
        vectors = {k: batch[k].numpy() for k in ("actions", "states") if k in batch}
        if args.ink_diagnostics:
            rows = ink_diagnostics(model, video, tuple(args.seed), **vectors)
            metrics["ink_diagnostics"] = {k: [round(float(r), 4) for r in v] for k, v in rows.items()}
            ratios = rows["free_running"]
        else:
            samples = Sampler(model).sample(video[:, :n_ctx], video.shape[1] - n_ctx, tuple(args.seed), **vectors)
            ratios = ink_ratio(video[:, n_ctx:], samples)
        metrics["ink_ratio"] = [round(float(r), 4) for r in ratios]
        frames = ", ".join(f"{n_ctx + 1 + t}: {r:.2f}" for t, r in enumerate(ratios))
        print(f"sampled / true ink per predicted frame ({len(video)} sequences, one sample each): {frames}")
        for name, values in metrics.get("ink_diagnostics", {}).items():
            print(f"  {name}: " + ", ".join(f"{v:.2f}" for v in values))
    if args.legibility:
        _legibility(config, model, args, metrics)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"split": args.split, **metrics}, f, indent=2)


def _legibility(config, model, args, metrics):
    from datasets import pipelines
    from vpn_tf import diagnostics
    from vpn_tf.models.digit_reader import DigitReader

    try:
        reader = DigitReader.load(args.reader) if config.dataset == "moving_mnist" else None
        classes = pipelines.digit_classes(config, args.split, args.legibility) if reader else None
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: --legibility: {e}") from None
    batch = next(iter(pipelines.eval_dataset(config, args.split, args.legibility).batch(args.legibility)))
    vectors = {k: batch[k].numpy() for k in ("actions", "states") if k in batch}
    report = diagnostics.sample_report(
        model, batch["video"].numpy(), tuple(args.seed), reader=reader, classes=classes, **vectors
    )
    metrics["samples"] = {"sequences": args.legibility, "seed": list(args.seed), **report}
    first = config.context_frames + 1

    def row(name, r):
        return f"  {name:<24}" + " ".join(f"{m:5.2f}+-{e:4.2f}" for m, e in zip(r["mean"], r["stderr"], strict=True))

    frames = len(report["tracking"]["samples"]["mean"])
    header = "  " + " " * 24 + " ".join(f"{'frame ' + str(first + t):>10}" for t in range(frames))
    if "legibility" in report:
        print(f"read right by the digit reader ({args.legibility} sequences, one sample each; mean +- se):")
        print(header)
        for name, r in report["legibility"].items():
            print(row(name, r))
    print("tracking (cosine similarity of blurred frames with the truth):")
    print(header)
    for name, r in report["tracking"].items():
        print(row(name, r))


def _per_frame_lower_bound(ds, context_frames):
    """Eq. 5's lower bound of each predicted frame, averaged over the sequences of `ds`: `[T_pred]`."""
    import numpy as np

    from vpn_tf import distributions

    sums, n = 0.0, 0
    for batch in ds.batch(64):
        entropy = distributions.per_frame(distributions.binary_entropy(batch["video"][:, context_frames:]))
        sums, n = sums + np.sum(entropy.numpy().astype(np.float64), axis=0), n + len(entropy)
    return sums / n


def _check_comparable(config, other, workdir):
    """Two models are compared on the same sequences only if they read the same data the same way."""
    from vpn_tf.config import evaluation_data_fields

    fields = [*evaluation_data_fields(config), "output"]
    differ = [
        f"{f} {getattr(config, f)!r} vs {getattr(other, f)!r}"
        for f in fields
        if getattr(config, f) != getattr(other, f)
    ]
    if differ:
        raise SystemExit(f"error: --against {workdir}: not comparable on the same sequences ({'; '.join(differ)})")


if __name__ == "__main__":
    main()
