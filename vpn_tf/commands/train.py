"""Train a Video Pixel Network: `python train.py [--config PRESET] [--workdir DIR] [--steps N] [--FIELD VALUE ...]`.

With no arguments it trains `cpu_moving_mnist` on the shipped MNIST data into workdirs/cpu_moving_mnist, resuming
from the latest checkpoint there. The loop lives in vpn_tf/training/, the data in datasets/.
Multi-worker: set TF_CONFIG on every worker (MultiWorkerMirroredStrategy); otherwise all local devices are mirrored.
"""

import argparse
import os
import sys

from vpn_tf import cli, commands

DEFAULT_PRESET = "cpu_moving_mnist"
# What `--max_minutes` alone trains for: no step limit, the budget stops it.
UNTIL_BUDGET = 2**31 - 1


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_config_flags(parser)
    parser.add_argument("--workdir", default=None, help="checkpoints and TensorBoard logs (default workdirs/PRESET)")
    cli.add_seed_flag(parser, "the initialisation, the data stream and the TensorBoard samples")
    cli.add_xla_flag(parser, "compile the train step with XLA")
    parser.add_argument("--mixed_precision", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--cpu_devices", type=int, default=0, help="split the CPU into N logical devices (testing; refused with GPUs)"
    )
    parser.add_argument("--require_gpu", action="store_true", help="fail unless TensorFlow sees a GPU")
    parser.add_argument(
        "--gpu_memory_growth", action="store_true", help="allocate GPU memory as needed (GPUs shared by processes)"
    )
    parser.add_argument(
        "--xla_gating",
        type=cli.boolean,
        default=True,
        metavar="BOOL",
        help="XLA-fuse the multiplicative units' gating (default true; false for hosts whose XLA toolchain fails)",
    )
    parser.add_argument(
        "--tf32",
        type=cli.boolean,
        default=True,
        metavar="BOOL",
        help="TensorFloat-32 matmuls on Ampere+ GPUs (TensorFlow's default, true; false for exact float32)",
    )
    parser.add_argument(
        "--initial_loss_scale",
        type=float,
        default=None,
        help="float16: the dynamic loss scale a new run starts from (default Keras' 2^15)",
    )
    # No speed in the help: BENCHMARKS.md has no GPU measurement of deterministic vs non-deterministic kernels.
    parser.add_argument(
        "--nondeterministic",
        action="store_true",
        help="no op determinism (GPUs: cuDNN's non-deterministic kernels allowed); runs are no longer bit-reproducible",
    )
    parser.add_argument(
        "--max_minutes",
        type=float,
        default=None,
        help="wall-clock budget of this invocation: evaluate, checkpoint and stop when spent. Alone (no --steps), "
        "training goes on until the budget runs out",
    )
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument(
        "--no_samples", action="store_true", help="TensorBoard shows teacher-forced predictions instead of samples"
    )
    parser.add_argument(
        "--monitor_sequences",
        type=int,
        default=16,
        metavar="N",
        help="validation sequences sampled at every evaluation for TensorBoard's sample legibility and tracking "
        "(0: none)",
    )
    args = cli.parse_known(parser, argv)
    if args.max_minutes is not None and not args.max_minutes > 0:  # also NaN
        parser.error(f"--max_minutes must be positive, got {args.max_minutes:g}")
    if args.max_minutes is not None and args.steps is None:
        args.steps = str(UNTIL_BUDGET)
    config = cli.config_from_args(args, DEFAULT_PRESET)
    return args, config


def _stopping(config, args) -> str:
    """What will stop this run, said before it starts."""
    if args.max_minutes is None:
        return f"trains to step {config.steps}"
    if config.steps == UNTIL_BUDGET:
        return f"trains until the {args.max_minutes:g}-minute budget runs out"
    return f"trains to step {config.steps} or for {args.max_minutes:g} minutes, whichever comes first"


def main(argv=None):
    commands.quiet_tensorflow()
    args, config = parse(argv)
    pipelines = commands.data_module("pipelines")
    from vpn_tf import devices, training
    from vpn_tf.layers.multiplicative_unit import set_xla_gate_fusion

    workdir = args.workdir or os.path.join("workdirs", config.name)
    try:
        config = pipelines.fill_from_data(config, cli.given_fields(args))
        training.check_workdir(workdir)
        devices.configure(args.cpu_devices, require_gpu=args.require_gpu, memory_growth=args.gpu_memory_growth)
        devices.set_tf32(args.tf32)
        set_xla_gate_fusion(args.xla_gating)
        strategy = devices.make_strategy()
        resume = training.latest_checkpoint(workdir)
        start = f"resumes from {resume}" if resume else f"starts a new run in {workdir}"
        print(f"{config.name}: {start}; {_stopping(config, args)}", file=sys.stderr, flush=True)
        print(f"{config.name}: {devices.describe(strategy)}", file=sys.stderr, flush=True)
        metrics = training.train_and_evaluate(
            config,
            workdir,
            train_dataset_fn=lambda start: pipelines.distributed_train_dataset_fn(config, args.seed, start),
            eval_dataset_fn=lambda split, n: pipelines.eval_dataset(
                config, split, n, binary_seed=pipelines.validation_binary_seed(config)
            ),
            seed=args.seed,
            strategy=strategy,
            jit=args.xla,
            mixed_precision=args.mixed_precision,
            deterministic=not args.nondeterministic,
            log_every=args.log_every,
            progress=not args.no_progress,
            sample_fn=None if args.no_samples else training.continuation_sampler(args.seed),
            max_minutes=args.max_minutes,
            initial_loss_scale=args.initial_loss_scale,
            sample_metrics_fn=None if args.no_samples else _sample_monitor(config, args),
        )
    except (training.TrainingError, devices.DeviceError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


DIGIT_READER = commands.shipped("digit_reader")


def _sample_monitor(config, args):
    """Legibility (Moving MNIST, with the shipped digit reader) and tracking of samples of a few validation
    sequences, in TensorBoard at every evaluation."""
    if not args.monitor_sequences:
        return None
    from vpn_tf import diagnostics
    from vpn_tf.models.digit_reader import DigitReader

    pipelines = commands.data_module("pipelines")
    n = args.monitor_sequences
    batch = next(iter(pipelines.eval_dataset(config, "validation", n).batch(n)))
    reader = classes = None
    digits = config.dataset == "moving_mnist" and config.frame_shape == (64, 64, 1)
    if digits and os.path.isdir(DIGIT_READER):
        reader = DigitReader.load(DIGIT_READER)
        classes = pipelines.digit_classes(config, "validation", n)
    vectors = {k: batch[k].numpy() for k in ("actions", "states") if k in batch}
    return diagnostics.sample_monitor(batch["video"].numpy(), (args.seed, 1), reader=reader, classes=classes, **vectors)


if __name__ == "__main__":
    main()
