"""How much a trained model's likelihood rests on what it conditions on: the past frames and the actions.

`python -m bench.context_ablation --workdir DIR [--workdir DIR2 ...] --split test_seen [--num_sequences N]
[--data_dir D] [--motion_threshold 8]` evaluates each model on the same sequences: as trained; with the context
tensor that the decoder reads (the ConvLSTM output, a function of the past frames only) replaced by zeros, so the
VPN's decoder predicts each frame from its own earlier pixels (and the actions) alone and the baseline from nothing
but the actions; and, for action-conditional models, with every sequence given the actions of the next sequence
(real action sequences that do not belong to the video: what the actions are worth to the model). Each ablation is
reported with its paired difference from the model as trained (per-sequence, with a standard error), per colour for
RGB configs, and split into "moving" dimensions (their pixel differs from the previous frame by more than
`--motion_threshold` in some colour: where the arm and the pushed objects are) and "static" ones.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from bench.common import emit, machine


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


def rotate_actions(dataset):
    """Each sequence of an unbatched dataset with the actions of the next one (the last with the first one's)."""
    import tensorflow as tf

    rotated = dataset.skip(1).concatenate(dataset.take(1))
    return tf.data.Dataset.zip((dataset, rotated)).map(lambda own, other: {**own, "actions": other["actions"]})


def moving_mask(video, context_frames: int, threshold: int):
    """bool `[B, T - context_frames, H, W, C]`: the predicted dimensions whose pixel differs from the same pixel of
    the previous frame by more than `threshold` (0..255) in some colour."""
    v = np.asarray(video).astype(np.int16)
    change = np.abs(v[:, context_frames:] - v[:, context_frames - 1 : -1]).max(-1, keepdims=True) > threshold
    return np.broadcast_to(change, v[:, context_frames:].shape)


def nats_by_motion(config, model, dataset, threshold: int, batch_size: int | None = None) -> dict:
    """Nats per dimension over the moving and the static dimensions of an unbatched dataset (`moving_mask`)."""
    from vpn_tf import training

    nats = {"moving": 0.0, "static": 0.0}
    count = {"moving": 0, "static": 0}
    for batch in dataset.batch(batch_size or config.batch_size):
        log_prob = model.log_prob(**training.model_inputs(batch)).numpy().astype(np.float64)
        mask = moving_mask(batch["video"].numpy(), config.context_frames, threshold)
        for name, where in (("moving", mask), ("static", ~mask)):
            nats[name] -= log_prob[where].sum()
            count[name] += int(where.sum())
    total = count["moving"] + count["static"]
    out = {"moving_fraction": count["moving"] / total}
    for name in nats:
        out[f"{name}_nats_per_dim"] = nats[name] / count[name] if count[name] else float("nan")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--num_sequences", type=int, default=None)
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
        name = training.metric_name(config)
        dataset = pipelines.eval_dataset(config, args.split, args.num_sequences)
        variants = {"with_context": (dataset, contextlib.nullcontext), "context_zeroed": (dataset, zero_context)}
        if config.action_dim:
            variants["actions_rotated"] = (rotate_actions(dataset), contextlib.nullcontext)
        record = {"bench": "context_ablation", "workdir": workdir, "model": config.model, "split": args.split}
        per_sequence = {}
        for label, (data, ablation) in variants.items():
            with ablation(model):
                m = training.evaluate(config, model, data, args.batch_size)
                per_sequence[label] = training.per_sequence_values(config, model, data, args.batch_size)
                motion = nats_by_motion(config, model, data, args.motion_threshold, args.batch_size)
            record[label] = {k: m[k] for k in m if k.startswith(name)} | motion
            if label != "with_context":
                diff = training.paired_difference(per_sequence[label], per_sequence["with_context"])
                record[label]["paired_difference"] = list(diff)
        record["count"] = m["count"]
        record["motion_threshold"] = args.motion_threshold
        records.append(emit({**record, **machine()}))
    return records


if __name__ == "__main__":
    main()
