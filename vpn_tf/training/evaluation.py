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
            self._step = tf.function(self._distributed_sums, input_signature=[dist.element_spec])
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
    step = tf.function(lambda batch: reduce(batch_log_prob(config, model, batch)))
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
