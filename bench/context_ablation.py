"""How much a trained model's likelihood rests on what it conditions on: the past frames and the actions.

`python -m bench.context_ablation --workdir DIR [--workdir DIR2 ...] --split test_seen [--num_sequences N]
[--data_dir D] [--motion_threshold 8]` evaluates each model on the same sequences: as trained; with the context
tensor that the decoder reads (the ConvLSTM output, a function of the past frames only) replaced by zeros, so the
VPN's decoder predicts each frame from its own earlier pixels (and the actions) alone and the baseline from nothing
but the actions; and, for action-conditional models, with every sequence given the actions of the next sequence
(real action sequences that do not belong to the video: what the actions are worth to the model). Each ablation is
reported with its paired difference from the model as trained (ablated minus as trained, per sequence, with a
standard error), per colour for RGB configs, and split into "moving" dimensions (their pixel differs from the
previous frame by more than `--motion_threshold` in some colour: where the arm and the pushed objects are) and
"static" ones.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from bench.common import emit, machine
from vpn_tf.stats import mean_and_stderr


@contextlib.contextmanager
def zero_context(model):
    """Within the block, `model`'s decoder receives an all-zero context (same shape and dtype)."""
    import tensorflow as tf

    decoder = model.decoder
    call = decoder.call
    if model.config.model == "vpn":
        decoder.call = lambda frame, context, condition=None: call(frame, tf.zeros_like(context), condition)
    else:
        decoder.call = lambda context, condition=None: call(tf.zeros_like(context), condition)
    try:
        yield model
    finally:
        del decoder.call  # back to the class's method


def rotate_actions(batches: list[dict]) -> list[dict]:
    """The same batches with every sequence given the actions of the next sequence (the last the first one's)."""
    actions = np.concatenate([b["actions"] for b in batches])
    if len(actions) < 2:
        raise ValueError(f"rotating actions between sequences needs at least 2 sequences; received {len(actions)}")
    rolled = np.roll(actions, -1, axis=0)
    out, i = [], 0
    for b in batches:
        n = len(b["actions"])
        out.append({**b, "actions": rolled[i : i + n]})
        i += n
    return out


def moving_mask(video, context_frames: int, threshold: int):
    """bool `[B, T - context_frames, H, W, C]`: the predicted dimensions whose pixel differs from the same pixel of
    the previous frame by more than `threshold` (0..255) in some colour."""
    v = np.asarray(video).astype(np.int16)
    change = np.abs(v[:, context_frames:] - v[:, context_frames - 1 : -1]).max(-1, keepdims=True) > threshold
    return np.broadcast_to(change, v[:, context_frames:].shape)


def _mean_and_stderr(values):
    """Mean over sequences (axis 0) and its standard error, as Python floats (or lists of them per colour)."""
    mean, stderr = mean_and_stderr(values, axis=0)
    return np.asarray(mean).tolist(), np.asarray(stderr).tolist()


def score(config, model, batches: list[dict], threshold: int) -> tuple[dict, np.ndarray]:
    """One pass over `batches`: the metric's mean and standard error over sequences, per colour for RGB, and the
    nats per dimension over the moving and the static dimensions (`moving_mask`); and the per-sequence values."""
    import tensorflow as tf

    from vpn_tf import training

    log_prob_fn = tf.function(lambda batch: training.batch_log_prob(config, model, batch))
    per_sequence, per_colour = [], []
    nats = {"moving": 0.0, "static": 0.0}
    count = {"moving": 0, "static": 0}
    for batch in batches:
        log_prob = log_prob_fn(batch).numpy().astype(np.float64)  # [B, T_pred, H, W, C]
        per_sequence.append(training.per_example_nats(config, log_prob).numpy())
        per_colour.append(-log_prob.mean(axis=(1, 2, 3)))
        mask = moving_mask(batch["video"], config.context_frames, threshold)
        for part, where in (("moving", mask), ("static", ~mask)):
            nats[part] -= log_prob[where].sum()
            count[part] += int(where.sum())
    if not per_sequence:
        raise ValueError("context_ablation: the evaluation split gave no sequences")
    per_sequence = np.concatenate(per_sequence)
    name = training.metric_name(config)
    out = {}
    out[name], out[f"{name}_stderr"] = _mean_and_stderr(per_sequence)
    if config.channels > 1:
        out[f"{name}_channel"], out[f"{name}_channel_stderr"] = _mean_and_stderr(np.concatenate(per_colour))
    out["moving_fraction"] = count["moving"] / (count["moving"] + count["static"])
    for part in nats:
        out[f"{part}_nats_per_dim"] = nats[part] / count[part] if count[part] else float("nan")
    return out, per_sequence


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--num_sequences",
        type=int,
        default=None,
        help="the first N sequences (default: all; they are held in memory, ~0.8 GB for the 10,000 Moving MNIST "
        "test sequences)",
    )
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument(
        "--motion_threshold",
        type=int,
        default=8,
        help="a predicted dimension is 'moving' if its pixel changed by more than this (0..255) since the last frame",
    )
    args = parser.parse_args(argv)

    from datasets import pipelines
    from vpn_tf import training

    records = []
    for workdir in args.workdir:
        config, model = training.restore_model(workdir)
        if args.data_dir:
            config = config.replace(data_dir=args.data_dir)
        dataset = pipelines.eval_dataset(config, args.split, args.num_sequences)
        batches = list(dataset.batch(args.batch_size or config.batch_size).as_numpy_iterator())
        variants = {"with_context": (batches, contextlib.nullcontext), "context_zeroed": (batches, zero_context)}
        if config.action_dim:
            variants["actions_rotated"] = (rotate_actions(batches), contextlib.nullcontext)
        record = {"bench": "context_ablation", "workdir": workdir, "model": config.model, "split": args.split}
        per_sequence = {}
        for label, (data, ablation) in variants.items():
            with ablation(model):
                record[label], per_sequence[label] = score(config, model, data, args.motion_threshold)
            if label != "with_context":
                # Ablated minus as trained, paired by sequence: positive = the ablation costs that many nats.
                mean, stderr = training.paired_difference(per_sequence[label], per_sequence["with_context"])
                record[label]["paired_difference"] = {"mean": mean, "stderr": stderr}
        record["count"] = len(per_sequence["with_context"])
        record["motion_threshold"] = args.motion_threshold
        records.append(emit({**record, **machine()}))
    return records


if __name__ == "__main__":
    main()
