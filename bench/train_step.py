"""Training-step FLOP utilisation: achieved GFLOP/s of a VPN train step vs a 3x3 convolution micro-benchmark with
the model's dominant channel widths, measured in the same process.

FLOPs per step (vpn_tf/cost.py, convolutions only, 2 FLOPs per multiply-add, masked kernels counted in full because
they are executed in full):
    forward MACs per sequence = (T - 1) * (encoder + ConvLSTM) + P * decoder          (T frames, P predicted)
    encoder = H W [9 C 2c + k (2c c + 2 * 9 c 4c + c 2c)]                           (RMB; ReLU: 2c c + 9 c c + c 2c)
    ConvLSTM = H W 9 (2c + L) 4L
    decoder = H W [f^2 C 2c + L 2c + l (RMB) + 2c T + T C K]
    training FLOPs = 3 x 2 x forward MACs x batch   (backward: input and weight gradients, each ~ the forward)
The micro-benchmark times forward + backward (input and weight gradients) of one 3x3 convolution c -> 4c (the
multiplicative unit's fused gates, most of the arithmetic) on the same batch of frames, so both sides count the same
kind of work. Utilisation = step GFLOP/s / micro-benchmark GFLOP/s; the two are timed in alternation and each
keeps its fastest round (`bench.common.interleaved`), so a noisy neighbour cannot favour one side of the ratio.

`python -m bench.train_step [--config cpu_moving_mnist] [--batch 4] [--frames 20] [--precision float32|bfloat16]
[--xla]` prints one JSON line.
"""

from __future__ import annotations

import argparse

from bench.common import bench_device, emit, interleaved, machine, peak_memory_mb, reset_peak_memory


def conv_microbenchmark(batch_frames: int, height: int, width: int, cin: int, cout: int, dtype="float32"):
    """(fn, FLOPs per call): forward + backward of a 3x3 same-padded convolution [N, height, width, cin] -> cout."""
    import tensorflow as tf

    x = tf.Variable(tf.random.normal([batch_frames, height, width, cin], dtype=dtype))
    w = tf.Variable(tf.random.normal([3, 3, cin, cout], stddev=0.05, dtype=dtype))
    upstream = tf.random.normal([batch_frames, height, width, cout], dtype=dtype)  # a real (non-constant) gradient

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, w, 1, "SAME")
            loss = tf.reduce_sum(y * upstream)
        gx, gw = tape.gradient(loss, [x, w])
        # The gradients do not need y (d loss / dy is `upstream`): without returning something of y, TF's graph
        # optimizer prunes the forward convolution and the "forward + backward" reference times the backward only.
        return tf.reduce_sum(gx) + tf.reduce_sum(gw) + loss

    return (lambda: float(step())), 3 * 2 * batch_frames * height * width * 9 * cin * cout


def train_step_fn(config_name, batch, frames, precision="float32", jit=False, overrides=None):
    """(fn, training FLOPs per step, config): fn runs one graph-mode train step on one device and waits for it."""
    import numpy as np
    import tensorflow as tf

    from vpn_tf import get_config, training
    from vpn_tf.cost import training_flops_per_sequence

    config = get_config(config_name, batch_size=batch, num_frames=frames, **(overrides or {}))
    strategy = tf.distribute.MirroredStrategy([bench_device()])
    with strategy.scope():
        state = training.create_train_state(config, precision)
    rng = np.random.default_rng(0)
    batch_data = {"video": rng.integers(0, 256, (batch, frames, *config.frame_shape)).astype(np.uint8)}
    if config.action_dim:
        batch_data["actions"] = rng.normal(size=(batch, frames, config.action_dim)).astype("float32")
    if config.state_dim:
        batch_data["states"] = rng.normal(size=(batch, frames, config.state_dim)).astype("float32")
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch_data).repeat())
    step = training.make_train_step(config, state, strategy, jit=jit)
    batch_in = next(iter(ds))
    return (lambda: int(step(batch_in))), training_flops_per_sequence(config, frames) * batch, config


def run(config_name, batch, frames, precision="float32", jit=False, repeats=3, overrides=None):
    step, flops, config = train_step_fn(config_name, batch, frames, precision, jit, overrides)
    c = config.hidden
    frames_encoded = batch * (frames - 1)
    # The reference convolution runs in the step's compute precision: where oneDNN has bfloat16 kernels they are
    # several times faster than float32 ones (BENCHMARKS.md's micro-benchmark column), so a float32 reference would
    # overstate a bfloat16 step's utilisation.
    micro, micro_flops = conv_microbenchmark(frames_encoded, config.height, config.width, c, 4 * c, dtype=precision)
    # Timed in turn, round by round, so both sides of the ratio see the same machine (see `interleaved`). The
    # micro-benchmark is repeated to last about as long as a step (capped at ~10 s for slow steps), so
    # neither side's fastest round is a short lucky window that the other could not have had.
    first = interleaved({"step": step, "micro": micro}, repeats=1, warmup=1)
    calls = max(1, round(min(first["step"], 10.0) / first["micro"]))

    def micro_block():
        for _ in range(calls):
            micro()

    device = bench_device()
    reset_peak_memory(device)
    seconds = interleaved({"step": step, "micro": micro_block}, repeats=repeats, warmup=0)
    peak_mb, memory_source = peak_memory_mb(device)
    achieved = flops / seconds["step"] / 1e9
    micro_gflops = micro_flops * calls / seconds["micro"] / 1e9
    return emit(
        {
            "bench": f"train_step/{config_name}",
            "batch": batch,
            "frames": frames,
            "precision": precision,
            "xla": jit,
            "seconds_per_step": round(seconds["step"], 3),
            "sequences_per_second": round(batch / seconds["step"], 3),
            "tflop_per_step": round(flops / 1e12, 4),
            "achieved_gflops": round(achieved, 1),
            "conv3x3_c_to_4c_microbenchmark_gflops": round(micro_gflops, 1),
            "micro_benchmark_shape": f"[{frames_encoded}, {config.height}, {config.width}, {c}] -> {4 * c}",
            "utilisation": round(achieved / micro_gflops, 3),
            "device": device,
            "peak_memory_mb": round(peak_mb),
            "memory_source": memory_source,
            **machine(),
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu_moving_mnist")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--context_frames", type=int, default=None)
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--xla", action="store_true", help="XLA-compile the step (as train.py --xla)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    overrides = {"context_frames": args.context_frames} if args.context_frames else {}
    return [run(args.config, args.batch, args.frames, args.precision, args.xla, args.repeats, overrides)]


if __name__ == "__main__":
    main()
