"""Train a Video Pixel Network: `python train.py [--config PRESET] [--workdir DIR] [--steps N] [--FIELD VALUE ...]`.

With no arguments it trains `cpu_moving_mnist` on the shipped MNIST data into workdirs/cpu_moving_mnist, resuming
from the latest checkpoint there. Intentionally short: the loop lives in vpn_tf/training.py, the data in datasets/.
Multi-worker: set TF_CONFIG on every worker (MultiWorkerMirroredStrategy); otherwise all local devices are mirrored.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # our `datasets/`, not Hugging Face's

from vpn_tf import cli  # noqa: E402

DEFAULT_PRESET = "cpu_moving_mnist"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_config_flags(parser)
    parser.add_argument("--workdir", default=None, help="checkpoints and TensorBoard logs (default workdirs/PRESET)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    parser.add_argument("--mixed_precision", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--cpu_devices", type=int, default=0, help="split the CPU into N logical devices (testing)")
    parser.add_argument("--nondeterministic", action="store_true", help="allow non-deterministic (faster) ops")
    parser.add_argument(
        "--max_minutes", type=float, default=None, help="wall-clock budget: evaluate, checkpoint and stop when spent"
    )
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument(
        "--no_samples", action="store_true", help="TensorBoard shows teacher-forced predictions instead of samples"
    )
    args = cli.parse_known(parser, argv)
    config = cli.config_from_args(args, DEFAULT_PRESET)
    return args, config


def main(argv=None):
    args, config = parse(argv)
    from datasets import pipelines
    from vpn_tf import training

    workdir = args.workdir or os.path.join("workdirs", config.name)
    try:
        training.check_workdir(workdir)
        strategy = training.make_strategy(args.cpu_devices)
        metrics = training.train_and_evaluate(
            config,
            workdir,
            train_dataset_fn=lambda start: pipelines.distributed_train_dataset_fn(config, args.seed, start),
            eval_dataset_fn=lambda split, n: pipelines.eval_dataset(
                config, split, n, binary_seed=pipelines.validation_binary_seed(config)
            ),
            seed=args.seed,
            strategy=strategy,
            jit=args.jit,
            mixed_precision=args.mixed_precision,
            deterministic=not args.nondeterministic,
            log_every=args.log_every,
            progress=not args.no_progress,
            sample_fn=None if args.no_samples else training.continuation_sampler(args.seed),
            max_minutes=args.max_minutes,
        )
    except (training.TrainingError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
