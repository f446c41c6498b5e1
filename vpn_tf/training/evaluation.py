"""The paper's metric on held-out data, with standard errors: distributed (`Evaluator`), per sequence and per frame
(for paired comparisons), and paired differences."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vpn_tf import distributions
from vpn_tf.config import VPNConfig
from vpn_tf.stats import mean_and_stderr, mean_and_stderr_from_sums
from vpn_tf.training.errors import TrainingError
from vpn_tf.training.loop_utils import progress_bar
from vpn_tf.training.objectives import batch_log_prob, metric_name, per_example_nats


class Evaluator:
    """The paper's metric over unbatched datasets, computed under `strategy` across its replicas.

    Each call batches the dataset (`batch_size` sequences per global batch), distributes it, and sums per-example
    values, their squares and the count on the devices (float64); the mean and its standard error come from those
    sums. The step is traced once per Evaluator (its input signature has an unknown batch size), so a training run
    that evaluates every few hundred steps compiles it once. Replicas that get no examples of the last, partial batch
    contribute zeros.
    """

    def __init__(self, config: VPNConfig, model: keras.Model, strategy=None, batch_size: int | None = None):
        self.config, self.model = config, model
        self.strategy = strategy or tf.distribute.get_strategy()
        self.batch_size = batch_size or config.batch_size
        self.traces = 0
        self._step = None

    @property
    def _num_sums(self) -> int:
        # sum, sum of squares, count, lower bound; per colour channel (softmax with C > 1): sum and sum of squares.
        per_channel = self.config.channels if self.config.output == "softmax" and self.config.channels > 1 else 0
        return 4 + 2 * per_channel

    def _replica_sums(self, batch):
        # A replica left without examples by the last batch contributes zeros (the model needs a non-empty batch).
        empty = tf.shape(batch["video"])[0] == 0
        return tf.cond(empty, lambda: tf.zeros([self._num_sums], tf.float64), lambda: self._sums(batch))

    def _sums(self, batch):
        config = self.config
        log_prob = batch_log_prob(config, self.model, batch)
        values = tf.cast(per_example_nats(config, log_prob), tf.float64)
        if config.output == "sigmoid":
            bound = tf.cast(distributions.lower_bound_nats_per_frame(batch["video"], config.context_frames), tf.float64)
        else:
            bound = tf.zeros_like(values)
        count = tf.cast(tf.size(values), tf.float64)
        sums = [tf.stack([tf.reduce_sum(values), tf.reduce_sum(values**2), count, tf.reduce_sum(bound)])]
        if self._num_sums > 4:
            channel = -tf.reduce_mean(tf.cast(log_prob, tf.float64), axis=[1, 2, 3])  # [B, C] nats/dim per colour
            sums += [tf.reduce_sum(channel, axis=0), tf.reduce_sum(channel**2, axis=0)]
        return tf.concat(sums, axis=0)

    def _distributed_sums(self, batch):
        self.traces += 1  # Python side effect: runs once per trace
        sums = self.strategy.run(self._replica_sums, args=(batch,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def __call__(self, dataset, progress: bool = False) -> dict:
        """{metric: mean, metric_stderr, count[, lower_bound]} over every sequence of `dataset`; RGB softmax configs
        add `nats_per_dim_channel` and `nats_per_dim_channel_stderr` (one per colour, R, G, B)."""
        name = metric_name(self.config)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batched = dataset.batch(self.batch_size).with_options(options)
        dist = self.strategy.experimental_distribute_dataset(batched)
        if self._step is None:
            self._step = tf.function(self._distributed_sums, input_signature=[dist.element_spec], autograph=False)
        totals = np.zeros(self._num_sums, np.float64)
        bar = progress_bar(None, f"eval {name}", progress)
        for batch in dist:
            sums = self._step(batch).numpy()
            totals += sums
            bar.update(int(sums[2]))
        bar.close()
        total, squares, n, bound = totals[:4]
        if n == 0:
            raise TrainingError("the evaluation dataset is empty")
        mean, stderr = mean_and_stderr_from_sums(total, squares, n)
        out = {name: float(mean), f"{name}_stderr": float(stderr), "count": int(n)}
        if self.config.output == "sigmoid":
            out["lower_bound"] = float(bound / n)
        if len(totals) > 4:
            c = self.config.channels
            channel = [mean_and_stderr_from_sums(totals[4 + k], totals[4 + c + k], n) for k in range(c)]
            out[f"{name}_channel"] = [float(m) for m, _ in channel]
            out[f"{name}_channel_stderr"] = [float(e) for _, e in channel]
        return out


def per_sequence_values(config: VPNConfig, model: keras.Model, dataset, batch_size: int | None = None) -> np.ndarray:
    """The paper's metric of every sequence of an unbatched dataset, in the dataset's order: float64 `[N]`.

    For paired comparisons of two models on the same sequences (`paired_difference`); single-device. The
    `Evaluator` gives the distributed mean and standard error of one model.
    """
    return _values(lambda lp: per_example_nats(config, lp), config, model, dataset, batch_size)


def per_frame_values(config: VPNConfig, model: keras.Model, dataset, batch_size: int | None = None) -> np.ndarray:
    """The paper's metric of every predicted frame of every sequence: float64 `[N, T_pred]` (nats in each frame for
    sigmoid configs, nats/dim within each frame for softmax ones), so that the mean over frames is
    `per_sequence_values`. Teacher-forced like the metric: each frame is scored given the true frames before it."""

    def reduce(log_prob):
        if config.output == "sigmoid":
            return -distributions.per_frame(log_prob)
        return -tf.reduce_mean(log_prob, axis=[2, 3, 4])

    return _values(reduce, config, model, dataset, batch_size)


def _values(reduce, config, model, dataset, batch_size):
    step = tf.function(lambda batch: reduce(batch_log_prob(config, model, batch)), autograph=False)
    values = [step(batch).numpy() for batch in dataset.batch(batch_size or config.batch_size)]
    if not values:
        raise TrainingError("the evaluation dataset is empty")
    return np.concatenate(values).astype(np.float64)


def paired_difference(a, b) -> tuple[float, float]:
    """(mean of a - b, its standard error) over paired values (the same sequences scored by two models).

    Sequence difficulty varies far more than the models' difference on a sequence, so the paired standard error
    is much smaller than either model's own: the test of whether one model beats another."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two equal 1-D shapes. Received: {a.shape} and {b.shape}")
    mean, stderr = mean_and_stderr(a - b)
    return float(mean), float(stderr)


def evaluate(
    config: VPNConfig,
    model: keras.Model,
    dataset,
    batch_size: int | None = None,
    progress: bool = False,
    strategy: tf.distribute.Strategy | None = None,
):
    """The paper's metric on an unbatched dataset: {metric: mean, metric_stderr, count[, lower_bound]}.

    Moving MNIST adds the lower bound (Eq. 5 with y = z) of the same sequences. One-off; a loop that evaluates
    repeatedly keeps an `Evaluator`.
    """
    return Evaluator(config, model, strategy, batch_size)(dataset, progress)


def per_frame_lower_bound(dataset, context_frames: int) -> np.ndarray:
    """Eq. 5's lower bound of each predicted frame of grey-level videos, averaged over an unbatched dataset:
    float64 `[T_pred]` (nats per frame)."""
    sums, n = 0.0, 0
    for batch in dataset.batch(64):
        entropy = distributions.per_frame(distributions.binary_entropy(batch["video"][:, context_frames:]))
        sums, n = sums + np.sum(entropy.numpy().astype(np.float64), axis=0), n + len(entropy)
    return sums / n


def per_frame_report(config: VPNConfig, model: keras.Model, dataset, batch_size: int | None = None) -> dict:
    """The metric of each predicted frame over the sequences: {"frame": 1-based frame numbers, "mean", "stderr"
    (None for a single sequence)} plus "lower_bound" per frame for sigmoid (grey-level) configs."""
    values = per_frame_values(config, model, dataset, batch_size)
    first = config.context_frames + 1
    means, spread = mean_and_stderr(values, axis=0)
    rows = {
        "frame": list(range(first, first + values.shape[1])),
        "mean": [float(v) for v in means],
        "stderr": [None if np.isnan(v) else float(v) for v in np.atleast_1d(spread)],
    }
    if config.output == "sigmoid":
        rows["lower_bound"] = [float(v) for v in per_frame_lower_bound(dataset, config.context_frames)]
    return rows


def compare(config, model, dataset, other_config, other, other_dataset, batch_size: int | None = None) -> dict:
    """Two models on the same sequences: {metric: the other's mean, "difference": this minus that, and its paired
    "difference_stderr"}. A ValueError when the datasets do not hold the same number of sequences."""
    mine = per_sequence_values(config, model, dataset, batch_size)
    theirs = per_sequence_values(other_config, other, other_dataset, batch_size)
    diff, stderr = paired_difference(mine, theirs)
    return {metric_name(config): float(theirs.mean()), "difference": diff, "difference_stderr": stderr}


def unit(config: VPNConfig) -> str:
    """The metric's unit as printed: "nats/frame" or "nats/dim"."""
    return metric_name(config).replace("_per_", "/")


def summary_lines(config: VPNConfig, split: str, metrics: dict) -> list[str]:
    """What `evaluate.py` prints first: the metric with its standard error (and lower bound), then per colour."""
    name = metric_name(config)
    line = f"{config.name} {split}: {metrics[name]:.3f} {unit(config)}"
    line += f" (standard error {metrics[name + '_stderr']:.3f}, {metrics['count']} sequences)"
    if "lower_bound" in metrics:
        line += f"; lower bound {metrics['lower_bound']:.2f}"
    if "binary_inputs_seed" in metrics:
        line += f"; the network read binary frames drawn with seed {metrics['binary_inputs_seed']}"
    lines = [line]
    if f"{name}_channel" in metrics:
        per = zip("RGB", metrics[f"{name}_channel"], metrics[f"{name}_channel_stderr"], strict=False)
        lines.append("per colour: " + ", ".join(f"{k} {m:.3f} (se {e:.3f})" for k, m, e in per))
    return lines


def per_frame_lines(config: VPNConfig, rows: dict) -> list[str]:
    """`per_frame_report` as printed lines."""
    bound = "lower_bound" in rows
    lines = [f"per predicted frame ({unit(config)}, mean +- standard error" + (", lower bound" if bound else "") + "):"]
    for t, frame in enumerate(rows["frame"]):
        se = f" +- {rows['stderr'][t]:.3f}" if rows["stderr"][t] is not None else ""
        bound_text = f"  (bound {rows['lower_bound'][t]:.2f})" if bound else ""
        lines.append(f"  frame {frame}: {rows['mean'][t]:.3f}{se}{bound_text}")
    return lines
