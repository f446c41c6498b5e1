"""Train a Video Pixel Network: `python train.py [--config PRESET] [--workdir DIR] [--steps N] [--FIELD VALUE ...]`.

With no arguments it trains `cpu_moving_mnist` on the shipped MNIST data into workdirs/cpu_moving_mnist, resuming
from the latest checkpoint there. Intentionally short: the loop lives in vpn_tf/training.py, the data in datasets/.
Multi-worker: set TF_CONFIG on every worker (MultiWorkerMirroredStrategy); otherwise all local devices are mirrored.
"""

import argparse
import os
import sys

# TensorFlow's INFO and WARNING lines are hidden, except when a GPU was asked for: then its "Cannot dlopen some GPU
# libraries" warning is the message that explains a missing GPU.
if "--require_gpu" not in sys.argv:
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
    parser.add_argument("--nondeterministic", action="store_true", help="allow non-deterministic (faster) ops")
    parser.add_argument(
        "--max_minutes", type=float, default=None, help="wall-clock budget: evaluate, checkpoint and stop when spent"
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
    config = cli.config_from_args(args, DEFAULT_PRESET)
    return args, config


def main(argv=None):
    args, config = parse(argv)
    from datasets import pipelines
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
            jit=args.jit,
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


DIGIT_READER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "digit_reader")


def _sample_monitor(config, args):
    """Legibility (Moving MNIST, with the shipped digit reader) and tracking of samples of a few validation
    sequences, in TensorBoard at every evaluation."""
    if not args.monitor_sequences:
        return None
    from datasets import pipelines
    from vpn_tf import diagnostics
    from vpn_tf.models.digit_reader import DigitReader

    n = args.monitor_sequences
    batch = next(iter(pipelines.eval_dataset(config, "validation", n).batch(n)))
    reader = classes = None
    if config.dataset == "moving_mnist" and config.frame_shape == (64, 64, 1) and os.path.isdir(DIGIT_READER):
        reader = DigitReader.load(DIGIT_READER)
        classes = pipelines.digit_classes(config, "validation", n)
    vectors = {k: batch[k].numpy() for k in ("actions", "states") if k in batch}
    return diagnostics.sample_monitor(batch["video"].numpy(), (args.seed, 1), reader=reader, classes=classes, **vectors)


if __name__ == "__main__":
    main()
