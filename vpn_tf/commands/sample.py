"""Sample continuations: `python sample.py --workdir DIR [--workdir DIR2 ...] [--split test] [--num_samples 3]`.

Takes context frames from a dataset split, samples continuations with the cached sampler (or a SavedModel's `sample`
signature with --saved_model), and writes animated GIFs and a PNG grid like the paper's Fig. 4/5/7: per sequence,
the ground truth (context + future) then each sample under it. Several --workdir flags compare models on the same
contexts and seeds (e.g. VPN vs baseline): their samples follow the truth in the order the flags were given.
"""

import argparse
import os
import sys

from vpn_tf import cli, commands

# The default model: the shipped Moving MNIST VPN trained on binary inputs (RESULTS.md, "binary inputs"). Its samples
# keep the digits' ink (the sampler feeds it binary pixels, what it trained on); the grey-input `cpu_moving_mnist`,
# evaluate.py's default and best on the paper's likelihood, loses its sampled digits within two frames.
SHIPPED_NAME = "cpu_moving_mnist_binarized"


def main(argv=None):
    commands.quiet_tensorflow()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workdir",
        action="append",
        default=None,
        help="a train.py working directory (latest checkpoint); repeatable (default: the shipped binary-input "
        f"Moving MNIST VPN, pretrained/{SHIPPED_NAME})",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="with one --workdir: a checkpoint inside it, e.g. DIR/checkpoints/ckpt-800 (default: the latest)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        help="the name of each --workdir's rows in the pictures, in the same order (default: the directory's name)",
    )
    parser.add_argument("--saved_model", default=None, help="sample through an exported SavedModel instead")
    cli.add_split_flag(parser, "where the context comes from")
    parser.add_argument("--num_sequences", type=int, default=4)
    parser.add_argument("--num_samples", type=int, default=3, help="continuations per context")
    parser.add_argument(
        "--generate_frames", type=int, default=None, metavar="N", help="frames to generate (default: the benchmark's)"
    )
    parser.add_argument("--num_frames", help=argparse.SUPPRESS)  # train.py's training length: refused below
    cli.add_seed_flag(parser, "the samples (sample s of --num_samples draws with seed (SEED, s))")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out", default="samples", help="output directory")
    parser.add_argument("--scale", type=int, default=2, help="pixel upscaling of the pictures")
    cli.add_data_flags(parser)
    args = cli.parse_known(parser, argv)
    if args.num_frames is not None:
        raise SystemExit(
            "error: sample.py takes --generate_frames N (frames to generate); --num_frames is train.py's training "
            "sequence length"
        )
    if not args.workdir:
        if args.saved_model:
            raise SystemExit("error: with --saved_model pass --workdir DIR (the training directory gives the config)")
        args.workdir = [commands.workdir_or_shipped(None, SHIPPED_NAME)]
    if args.saved_model and len(args.workdir) > 1:
        raise SystemExit("error: --saved_model samples one model; pass a single --workdir (its config)")
    if args.label and len(args.label) != len(args.workdir):
        raise SystemExit(f"error: {len(args.label)} --label for {len(args.workdir)} --workdir; give one per --workdir")
    labels = args.label or [os.path.basename(os.path.normpath(w)) for w in args.workdir]
    if args.checkpoint and len(args.workdir) > 1:
        raise SystemExit("error: --checkpoint names one model's checkpoint; pass a single --workdir with it")
    if args.generate_frames is not None and args.generate_frames < 1:
        raise SystemExit(f"error: --generate_frames must be >= 1; got {args.generate_frames}")

    import tensorflow as tf
    from tqdm import tqdm

    from vpn_tf import devices, training, visualize
    from vpn_tf.config import evaluation_data_fields
    from vpn_tf.exporting import signature_sampler
    from vpn_tf.sampling import Sampler

    pipelines = commands.data_module("pipelines")
    print(devices.describe(), file=sys.stderr)
    try:
        models = []  # (config, sample(context, num_frames, seed, actions, states) -> uint8 frames)
        for workdir in args.workdir:
            if args.saved_model:
                config = training.load_config(workdir)
                models.append((config, signature_sampler(tf.saved_model.load(args.saved_model).signatures["sample"])))
            else:
                config, model = commands.restore(workdir, args.checkpoint)
                sampler = Sampler(model, "cached")
                models.append((config, lambda *a, s=sampler: s.sample(*a, args.temperature, progress=False)))
        config = models[0][0]
        for workdir, (other, _) in zip(args.workdir[1:], models[1:], strict=True):
            differ = config.diff(other, evaluation_data_fields(config))
            if differ:
                raise ValueError(f"{workdir} models other data than {args.workdir[0]}: {differ}")
        config = cli.with_data_flags(config, args)
        args.split = commands.resolve_split(config, args.split)
        ds = pipelines.eval_dataset(config, args.split, args.num_sequences)
        batch = next(iter(ds.batch(args.num_sequences)))
    except (training.TrainingError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    video = batch["video"].numpy()
    n_ctx = config.context_frames
    num_frames = args.generate_frames or (video.shape[1] - n_ctx)
    context = video[:, :n_ctx]
    actions = batch["actions"].numpy() if "actions" in batch else None
    states = batch["states"].numpy() if "states" in batch else None
    if actions is not None and actions.shape[1] < n_ctx + num_frames:
        raise SystemExit(
            f"error: the split has actions for {actions.shape[1]} frames; use --generate_frames <= "
            f"{actions.shape[1] - n_ctx}"
        )
    samples = []  # [model][sample] -> uint8 [B, num_frames, H, W, C]
    with tqdm(total=len(models) * args.num_samples, desc="samples", unit="sample") as bar:
        for model_config, sample_fn in models:
            # Each model gets the conditioning it was trained with (e.g. a VPN without actions beside one with).
            a = actions if model_config.action_dim else None
            st = states if model_config.state_dim else None
            per_model = []
            for s in range(args.num_samples):
                per_model.append(sample_fn(context, num_frames, (args.seed, s), a, st))
                bar.update(1)
            samples.append(per_model)
    visualize.write_samples(args.out, video[:, : n_ctx + num_frames], context, samples, scale=args.scale, labels=labels)
    order = ", ".join(f"{args.num_samples} from {w}" for w in args.workdir)
    print(
        f"wrote {args.out}/grid.png (per sequence: truth, then samples: {order}) and "
        f"{len(video)} GIFs (truth | samples side by side)"
    )


if __name__ == "__main__":
    main()
