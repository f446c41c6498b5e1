"""Sample continuations: `python sample.py --workdir DIR [--workdir DIR2 ...] [--split test] [--num_samples 3]`.

Takes context frames from a dataset split, samples continuations with the cached sampler (or a SavedModel's `sample`
signature with --saved_model), and writes animated GIFs and a PNG grid like the paper's Fig. 4/5/7: per sequence,
the ground truth (context + future) then each sample under it. Several --workdir flags compare models on the same
contexts and seeds (e.g. VPN vs baseline): their samples follow the truth in the order the flags were given.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vpn_tf import cli  # noqa: E402

# The default model: the shipped Moving MNIST VPN trained on binary inputs (RESULTS.md, "binary inputs"). Its samples
# keep the digits' ink (the sampler feeds it binary pixels, what it trained on); the grey-input `cpu_moving_mnist`,
# evaluate.py's default and best on the paper's likelihood, loses its sampled digits within two frames.
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "cpu_moving_mnist_binarized")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workdir",
        action="append",
        default=None,
        help="a train.py working directory (latest checkpoint); repeatable (default: the shipped binary-input "
        "Moving MNIST VPN, pretrained/cpu_moving_mnist_binarized)",
    )
    parser.add_argument("--saved_model", default=None, help="sample through an exported SavedModel instead")
    parser.add_argument("--split", default="test", help="where the context comes from (default test)")
    parser.add_argument("--num_sequences", type=int, default=4)
    parser.add_argument("--num_samples", type=int, default=3, help="continuations per context")
    parser.add_argument("--num_frames", type=int, default=None, help="frames to generate (default: the benchmark's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out", default="samples", help="output directory")
    parser.add_argument("--scale", type=int, default=2, help="pixel upscaling of the pictures")
    cli.add_data_flags(parser)
    args = cli.parse_known(parser, argv)
    if not args.workdir:
        if args.saved_model:
            raise SystemExit("error: with --saved_model pass --workdir DIR (the training directory gives the config)")
        if not os.path.isdir(SHIPPED):
            raise SystemExit(f"error: no --workdir given and no shipped model at {SHIPPED}")
        args.workdir = [SHIPPED]
    if args.saved_model and len(args.workdir) > 1:
        raise SystemExit("error: --saved_model samples one model; pass a single --workdir (its config)")

    import tensorflow as tf
    from tqdm import tqdm

    from datasets import pipelines
    from vpn_tf import devices, training, visualize
    from vpn_tf.config import evaluation_data_fields
    from vpn_tf.exporting import signature_sampler
    from vpn_tf.sampling import Sampler

    try:
        models = []  # (config, sample(context, num_frames, seed, actions, states) -> uint8 frames)
        for workdir in args.workdir:
            if args.saved_model:
                config = training.load_config(workdir)
                models.append((config, signature_sampler(tf.saved_model.load(args.saved_model).signatures["sample"])))
            else:
                config, model = training.restore_model(workdir)
                print(f"{config.name} from {workdir}; {devices.describe()}", file=sys.stderr)
                sampler = Sampler(model, "cached")
                models.append((config, lambda *a, s=sampler: s.sample(*a, args.temperature, progress=False)))
        config = models[0][0]
        for workdir, (other, _) in zip(args.workdir[1:], models[1:], strict=True):
            differ = config.diff(other, evaluation_data_fields(config))
            if differ:
                raise ValueError(f"{workdir} models other data than {args.workdir[0]}: {differ}")
        config = cli.with_data_flags(config, args)
        ds = pipelines.eval_dataset(config, args.split, args.num_sequences)
        batch = next(iter(ds.batch(args.num_sequences)))
    except (training.TrainingError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    video = batch["video"].numpy()
    n_ctx = config.context_frames
    num_frames = args.num_frames or (video.shape[1] - n_ctx)
    context = video[:, :n_ctx]
    actions = batch["actions"].numpy() if "actions" in batch else None
    states = batch["states"].numpy() if "states" in batch else None
    if actions is not None and actions.shape[1] < n_ctx + num_frames:
        raise SystemExit(
            f"error: the split has actions for {actions.shape[1]} frames; use --num_frames <= "
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
    visualize.write_samples(args.out, video[:, : n_ctx + num_frames], context, samples, scale=args.scale)
    order = ", ".join(f"{args.num_samples} from {w}" for w in args.workdir)
    print(
        f"wrote {args.out}/grid.png (per sequence: truth, then samples: {order}) and "
        f"{len(video)} GIFs (truth | samples side by side)"
    )


if __name__ == "__main__":
    main()
