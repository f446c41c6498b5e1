"""How much a trained model's likelihood rests on the past frames: nats with the ConvLSTM context zeroed.

`python -m bench.context_ablation --workdir DIR [--workdir DIR2 ...] --split test_seen [--num_sequences N]
[--data_dir D]` evaluates each model twice on the same sequences: as trained, and with the context tensor that the
decoder reads (the ConvLSTM output, a function of the past frames only) replaced by zeros, so the VPN's decoder
predicts each frame from its own earlier pixels (and the actions) alone and the baseline from nothing but the
actions. The gap is what the past frames are worth to the model; per colour for RGB configs.
"""

from __future__ import annotations

import argparse
import contextlib

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--num_sequences", type=int, default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=None)
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
        full = training.evaluate(config, model, dataset, args.batch_size)
        with zero_context(model):
            ablated = training.evaluate(config, model, dataset, args.batch_size)
        record = {"bench": "context_ablation", "workdir": workdir, "model": config.model, "split": args.split}
        for label, m in (("with_context", full), ("context_zeroed", ablated)):
            record[label] = {k: m[k] for k in m if k.startswith(name)}
        record["count"] = full["count"]
        records.append(emit({**record, **machine()}))
    return records


if __name__ == "__main__":
    main()
