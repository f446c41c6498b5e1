"""Data rates: the Moving MNIST training stream vs what training of `cpu_moving_mnist` consumes (reference point: 20x).

`python -m bench.data [--batches N]` prints JSON lines.
"""

from __future__ import annotations

import argparse
import time

from bench.common import emit, machine, timeit


def stream_rate(batches: int, batch_size: int = 16) -> float:
    from datasets import moving_mnist

    it = iter(moving_mnist.train_stream(seed=0).batch(batch_size))
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)["video"].numpy()
    return batches * batch_size / (time.perf_counter() - t)


def training_rate(config_name: str = "cpu_moving_mnist", steps: int = 2) -> float:
    """Sequences/s consumed by the float32 graph-mode train step (one device), data excluded."""
    import tensorflow as tf

    from datasets import pipelines
    from vpn_tf import get_config, training

    config = get_config(config_name)
    from bench.common import bench_device

    strategy = tf.distribute.MirroredStrategy([bench_device()])
    with strategy.scope():
        state = training.create_train_state(config)
    ds = strategy.distribute_datasets_from_function(pipelines.distributed_train_dataset_fn(config, 0, 0))
    batch = next(iter(ds))
    step = training.make_train_step(config, state, strategy)
    seconds = timeit(lambda: int(step(batch)), repeats=steps, warmup=1)
    return config.batch_size / seconds


def pushing_sim_rate(sequences: int) -> float:
    """Frames/s of the pybullet pushing simulator in one process (physics, rendering, JPEG encoding)."""
    from datasets import pushing_sim

    sim = pushing_sim.Simulator()
    sim.sequence("train", 0, 0)
    t = time.perf_counter()
    for i in range(sequences):
        frames, actions, states, _ = sim.sequence("train", 0, i + 1)
        pushing_sim.encode_sequence(frames, actions, states)
    return sequences * pushing_sim.NUM_FRAMES / (time.perf_counter() - t)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sim_sequences", type=int, default=20)
    args = parser.parse_args(argv)
    stream = stream_rate(args.batches)
    train = training_rate(steps=args.steps)
    sim = pushing_sim_rate(args.sim_sequences)
    return [
        emit(
            {
                "bench": "data/pushing_sim",
                "frames_per_second_one_core": round(sim, 1),
                "reference_frames_per_second_per_core": 100,
                **machine(),
            }
        ),
        emit(
            {
                "bench": "data/moving_mnist_stream",
                "stream_sequences_per_s": round(stream, 1),
                "training_consumes_sequences_per_s": round(train, 3),
                "ratio": round(stream / train, 1),
                "reference_ratio": 20,
                **machine(),
            }
        ),
    ]


if __name__ == "__main__":
    main()
