"""Training and evaluation of VPNs: a custom tf.distribute loop (§5.1, §6.1 of the VPN paper).

A library of small functions; `train.py` is a thin CLI over `train_and_evaluate`. The loop is custom rather than
`Model.fit` because Keras 3's `fit` fails under MultiWorkerMirroredStrategy (keras#20585).

Data comes in through factories so that this library does not depend on the repository's `datasets/` folder:
`train_dataset_fn(start) -> fn(tf.distribute.InputContext) -> per-replica batched tf.data.Dataset` (from global
stream position `start`) and `eval_dataset_fn(split, num_sequences) -> unbatched tf.data.Dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from vpn_tf import devices, distributions
from vpn_tf.config import ARCHITECTURE_FIELDS, VPNConfig
from vpn_tf.models.vpn import build_model
from vpn_tf.visualize import video_grid

CONFIG_FILE = "config.json"
MIXED_PRECISION = ("float32", "bfloat16", "float16")


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, incompatible checkpoint, unusable workdir)."""


# ---------------------------------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------------------------------


def metric_name(config: VPNConfig) -> str:
    """The paper's metric for the config: nats/frame (Moving MNIST, sigmoid) or nats/dim (softmax)."""
    return "nats_per_frame" if config.output == "sigmoid" else "nats_per_dim"


def per_example_nats(config: VPNConfig, log_prob):
    """`[batch, T_pred, H, W, C]` log-probabilities -> `[batch]` in the paper's metric (nats/frame or nats/dim)."""
    if config.output == "sigmoid":
        return -tf.reduce_mean(distributions.per_frame(log_prob), axis=1)
    return -distributions.per_dimension(log_prob)


def per_example_loss(config: VPNConfig, log_prob):
    """The optimised objective per example: negative log-likelihood in nats per dimension.

    Equal to the metric up to a constant factor (H*W*C for nats/frame), so it has the same minimiser; nats/dim keeps
    gradient magnitudes independent of the frame size.
    """
    return -distributions.per_dimension(log_prob)


# ---------------------------------------------------------------------------------------------------------------------
# Learning-rate plateau schedule
# ---------------------------------------------------------------------------------------------------------------------


class Plateau(tf.Module):
    """Multiplies the learning rate by `factor` when the validation metric has not improved (by more than
    `min_delta`) for `patience` consecutive evaluations (§5.1: "multiply the learning rate by 0.3 when learning
    flatlines"). Its state lives in variables, so checkpoints restore it exactly.
    """

    def __init__(self, factor: float, patience: int, min_delta: float = 0.0):
        super().__init__(name="plateau")
        if not 0 < factor <= 1 or patience < 1:
            raise ValueError(f"need 0 < factor <= 1 and patience >= 1. Received: {factor}, {patience}")
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_evals")

    def update(self, value: float, learning_rate: tf.Variable) -> bool:
        """Records one evaluation (lower is better); returns True if the learning rate was decayed."""
        if value < float(self.best.numpy()) - self.min_delta:
            self.best.assign(value)
            self.bad_evals.assign(0)
            return False
        self.bad_evals.assign_add(1)
        if int(self.bad_evals.numpy()) >= self.patience:
            learning_rate.assign(learning_rate * self.factor)
            self.bad_evals.assign(0)
            return True
        return False


# ---------------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------------


make_strategy = devices.make_strategy  # kept here: part of the training API


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def check_workdir(workdir: str) -> None:
    """Creates `workdir` and proves it writable, before any training starts."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
            pass
    except OSError as e:
        raise TrainingError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from None


def check_compatible(workdir: str, config: VPNConfig) -> None:
    """Raises if `workdir` holds a run of another architecture (its config.json differs on weight-shaping fields)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path) or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")) is None:
        return
    with open(path) as f:
        saved = VPNConfig.from_dict(json.load(f))
    diff = saved.diff(config, ARCHITECTURE_FIELDS)
    if diff:
        fields = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise TrainingError(f"The checkpoint in {workdir} is from another config ({fields}); use another --workdir")
    if saved.validates_on_binary_frames != config.validates_on_binary_frames:
        # The learning-rate plateau compares validation figures across the resume: binary and grey readings differ
        # by tens of nats/frame, so switching would decay the rate for nothing (or hide a real plateau).
        raise TrainingError(
            f"The run in {workdir} validates on {'binary' if saved.validates_on_binary_frames else 'grey'} frames "
            f"(binarize_inputs={saved.binarize_inputs}); the requested binarize_inputs={config.binarize_inputs} "
            "would switch its validation reading under the learning-rate plateau. Resume with the run's value or "
            "use another --workdir"
        )


def write_config(workdir: str, config: VPNConfig, extra: dict | None = None) -> None:
    """Writes config.json (and run.json) atomically: other workers may be reading the chief's copy."""
    files = {CONFIG_FILE: config.to_json()}
    if extra:
        files["run.json"] = json.dumps(extra, indent=2, sort_keys=True)
    for name, text in files.items():
        path = os.path.join(workdir, name)
        with open(f"{path}.tmp{os.getpid()}", "w") as f:
            f.write(text)
        os.replace(f"{path}.tmp{os.getpid()}", path)


def load_config(workdir: str) -> VPNConfig:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise TrainingError(f"{workdir} holds no {CONFIG_FILE}: not a vpn_tf training directory")
    with open(path) as f:
        return VPNConfig.from_dict(json.load(f))


class StepMetrics(tf.Module):
    """Training metrics summed over the steps since the last `read`, kept on the devices.

    The train step only adds to these variables, so the host never waits for a step to finish; the loop reads them
    every `log_every` steps (and before every evaluation and checkpoint). They are sync-on-read: each replica adds its
    share, and a read in cross-replica context sums (loss, metric) or takes the first replica's value (the gradient
    norm and the step counts, identical on every replica).

    A float16 step whose scaled gradients overflowed is skipped by the loss-scale optimizer (weights unchanged, scale
    halved): it counts in `skipped`, and its (infinite) norm stays out of the gradient-norm mean.
    """

    def __init__(self):
        super().__init__(name="step_metrics")
        on_read = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ)
        total, first = tf.VariableAggregation.SUM, tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.loss = tf.Variable(0.0, aggregation=total, name="loss", **on_read)
        self.metric = tf.Variable(0.0, aggregation=total, name="metric", **on_read)
        self.grad_norm = tf.Variable(0.0, aggregation=first, name="grad_norm", **on_read)
        self.steps = tf.Variable(0.0, aggregation=first, name="steps", **on_read)
        self.skipped = tf.Variable(0.0, aggregation=first, name="skipped", **on_read)

    def add(self, loss, metric, grad_norm, applied=True):
        """In replica context: this replica's share of the global loss and metric, the global gradient norm, and
        whether the update was applied (False: an overflowed float16 step)."""
        applied = tf.cast(applied, tf.float32)
        self.loss.assign_add(tf.cast(loss, tf.float32))
        self.metric.assign_add(tf.cast(metric, tf.float32))
        # where(), not a product: 0 * inf is nan.
        self.grad_norm.assign_add(tf.where(applied > 0, tf.cast(grad_norm, tf.float32), 0.0))
        self.steps.assign_add(1.0)
        self.skipped.assign_add(1.0 - applied)

    def read(self) -> dict:
        """Means over the steps since the last read, {"loss", "metric", "grad_norm", "steps", "skipped"}; the norm
        is the mean over the applied steps (nan if none was). Then resets."""
        steps = float(self.steps.read_value())
        skipped = float(self.skipped.read_value())
        out = {k: float(getattr(self, k).read_value()) / max(steps, 1.0) for k in ("loss", "metric")}
        applied = steps - skipped
        out["grad_norm"] = float(self.grad_norm.read_value()) / applied if applied else float("nan")
        for v in (self.loss, self.metric, self.grad_norm, self.steps, self.skipped):
            v.assign(tf.zeros_like(v.read_value()))
        return {**out, "steps": int(steps), "skipped": int(skipped)}


class _PreReducedGradients:
    """Optimizer mixin: `apply` takes gradients the train step has already all-reduced (summed over replicas).

    Keras' TensorFlow optimizer all-reduces the gradients it is given when called in a replica context
    (`_all_reduce_sum_gradients`). The train step needs the reduced gradient before the update (its global norm, for
    clipping and logging), so without this the gradients would cross the interconnect twice per step.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


@keras.saving.register_keras_serializable(package="vpn_tf")
class RMSprop(_PreReducedGradients, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` applying gradients already all-reduced by the train step (`make_train_step`)."""


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint holds: weights, optimizer slots, counters, the data position and the schedule; and the
    step's metric accumulators (not checkpointed)."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    data_position: tf.Variable
    plateau: Plateau
    metrics: StepMetrics = dataclasses.field(default_factory=StepMetrics)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            data_position=self.data_position,
            plateau=self.plateau,
        )

    @property
    def learning_rate(self) -> tf.Variable:
        opt = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return opt.learning_rate


def create_train_state(
    config: VPNConfig, mixed_precision: str = "float32", initial_loss_scale: float | None = None
) -> TrainState:
    """Model (float32 variables, `mixed_precision` compute), RMSProp, counters; call under `strategy.scope()`.

    float16 wraps RMSProp in Keras' dynamic `LossScaleOptimizer` (initial scale `initial_loss_scale`, Keras' 2^15 by
    default; doubled after 2,000 good steps, halved by every overflowed step, which it skips)."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}. Received: {mixed_precision!r}")
    dtype = None if mixed_precision == "float32" else f"mixed_{mixed_precision}"
    model = build_model(config, dtype=dtype)
    optimizer = RMSprop(learning_rate=config.learning_rate)
    if mixed_precision == "float16":
        scale = {} if initial_loss_scale is None else {"initial_scale": float(initial_loss_scale)}
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, **scale)
    optimizer.build(model.trainable_variables)
    return TrainState(
        model=model,
        optimizer=optimizer,
        step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
        data_position=tf.Variable(0, dtype=tf.int64, trainable=False, name="data_position"),
        plateau=Plateau(config.lr_decay_factor, config.plateau_patience),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------------


def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("video", "actions", "states") if k in batch}


def batch_log_prob(config: VPNConfig, model: keras.Model, batch: dict, training: bool = False):
    """Log-probability `[batch, T_pred, H, W, C]` of the batch's "video". When the batch carries "binary_video"
    (`binarize_inputs`, `pipelines.with_binary_frames`) the network reads those binary frames instead and is scored
    against the grey levels of "video" (Eq. 5): an unbiased one-draw estimate of the expected log-likelihood of
    binary frames drawn from those grey levels."""
    inputs = model_inputs(batch)
    if "binary_video" not in batch:
        return model.log_prob(**inputs, training=training)
    logits = model.conditional_logits(**dict(inputs, video=batch["binary_video"]), training=training)
    return distributions.log_prob(logits, batch["video"][:, config.context_frames :], config.output)


def make_train_step(config: VPNConfig, state: TrainState, strategy: tf.distribute.Strategy, jit: bool = False):
    """A `tf.function` running one synchronous data-parallel step; returns the new global step (a tensor).

    Each replica's loss is its examples' summed loss divided by the *global* batch size, so the summed gradient is the
    gradient of the global mean whatever the replica count. The gradients are all-reduced exactly once per step, here
    (the optimizer takes them as they are, see `RMSprop`): the global norm is computed from the reduced gradient and
    clips it, identically on every replica. Loss, metric and norm are added to `state.metrics` on the devices; the
    host reads them when it needs them, so dispatching the next step never waits for this one.

    With `jit`, each replica's forward and backward pass is one XLA computation (XLA compiles a single device's
    program; the all-reduce and the update run outside it), so `jit` works with any replica count.

    With `config.binarize_inputs` the network reads the batch's "binary_video" (drawn by the input pipeline,
    `pipelines.with_binary_frames`) and is scored against its grey "video" (`batch_log_prob`).
    """
    model, optimizer = state.model, state.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def forward_backward(batch):
        if config.binarize_inputs and "binary_video" not in batch:
            raise ValueError(
                "binarize_inputs=True: the training batches need the binary frames the network reads "
                f"('binary_video', from datasets.pipelines.train_dataset). Received keys: {sorted(batch)}"
            )
        with tf.GradientTape() as tape:
            log_prob = batch_log_prob(config, model, batch, training=True)
            loss = tf.reduce_sum(per_example_loss(config, log_prob)) / config.batch_size
            objective = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(objective, model.trainable_variables)
        metric = tf.reduce_sum(per_example_nats(config, log_prob)) / config.batch_size
        return loss, metric, grads

    if jit:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(batch):
        loss, metric, grads = forward_backward(batch)
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        true_grads = [g / optimizer.dynamic_scale for g in grads] if scaled else grads
        norm = tf.linalg.global_norm(true_grads)
        # Every replica holds the same reduced gradients, so all agree on this. Under loss scaling an overflowed
        # step is skipped by the optimizer (scale halved, weights kept); without it a non-finite gradient is fatal.
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) if scaled else True
        if config.grad_clip_norm > 0:
            factor = tf.minimum(1.0, config.grad_clip_norm / (norm + 1e-12))
            grads = [g * tf.cast(factor, g.dtype) for g in grads]
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        state.metrics.add(loss, metric, norm, applied=finite)

    def step(batch):
        strategy.run(replica_step, args=(batch,))
        state.data_position.assign_add(config.batch_size)
        return state.step.assign_add(1)

    return tf.function(step)


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
        bar = _bar(None, f"eval {name}", progress)
        for batch in dist:
            sums = self._step(batch).numpy()
            totals += sums
            bar.update(int(sums[2]))
        bar.close()
        total, squares, n, bound = totals[:4]
        if n == 0:
            raise TrainingError("the evaluation dataset is empty")
        mean, stderr = _mean_and_stderr(total, squares, n)
        out = {name: float(mean), f"{name}_stderr": float(stderr), "count": int(n)}
        if self.config.output == "sigmoid":
            out["lower_bound"] = float(bound / n)
        if len(totals) > 4:
            c = self.config.channels
            channel = [_mean_and_stderr(totals[4 + k], totals[4 + c + k], n) for k in range(c)]
            out[f"{name}_channel"] = [float(m) for m, _ in channel]
            out[f"{name}_channel_stderr"] = [float(e) for _, e in channel]
        return out


def _mean_and_stderr(total, squares, n):
    mean = total / n
    var = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else float("nan")
    return mean, math.sqrt(var / n)


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
    d = a - b
    stderr = float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), stderr


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


# ---------------------------------------------------------------------------------------------------------------------
# Pictures for TensorBoard
# ---------------------------------------------------------------------------------------------------------------------


def expected_frames(config: VPNConfig, logits):
    """The mean of each predicted dimension's distribution as uint8 (teacher-forced: given the true past pixels)."""
    return tf.cast(tf.round(distributions.mean(logits, config.output)), tf.uint8)


# ---------------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------------


def train_and_evaluate(
    config: VPNConfig,
    workdir: str,
    train_dataset_fn: Callable,
    eval_dataset_fn: Callable | None = None,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit: bool = False,
    mixed_precision: str = "float32",
    deterministic: bool = True,
    log_every: int = 10,
    progress: bool = True,
    sample_fn: Callable | None = None,
    max_minutes: float | None = None,
    initial_loss_scale: float | None = None,
    sample_metrics_fn: Callable | None = None,
) -> dict:
    """Trains `config` in `workdir` up to `config.steps` steps, resuming from the latest checkpoint there.

    Args:
        config: the run's config (written to workdir/config.json).
        workdir: checkpoints/, TensorBoard logs (train/, eval/), config.json.
        train_dataset_fn: `fn(start) -> fn(InputContext) -> dataset` of per-replica batches from stream position
            `start` (see `datasets.pipelines.distributed_train_dataset_fn`).
        eval_dataset_fn: `fn(split, num_sequences) -> unbatched dataset`; evaluation runs on "validation" every
            `config.eval_every` steps and at the end, and drives the learning-rate plateau.
        seed: initialisation and data seed.
        strategy: defaults to `make_strategy()`.
        jit: compile the train step with XLA.
        mixed_precision: "float32", "bfloat16" or "float16" (dynamic loss scaling).
        deterministic: enable deterministic ops (bitwise-reproducible runs and resumes).
        log_every: steps between scalar summaries.
        progress: show a progress bar.
        sample_fn: optional `fn(model, batch) -> uint8 [B, T_pred, H, W, C]` continuations for TensorBoard; without
            it, images show teacher-forced predictions, labelled as such.
        max_minutes: optional wall-clock budget for this invocation: once it is spent, the step in flight finishes,
            then the run evaluates and checkpoints as at `config.steps` and returns (how RESULTS.md compares models
            at equal budgets). TensorBoard's `wall_minutes` records the time spent, so curves can be read against it.
        sample_metrics_fn: optional `fn(model) -> {tag: float}` written to TensorBoard at every evaluation, beside
            the likelihood (e.g. `vpn_tf.diagnostics.sample_monitor`: legibility and tracking of samples).
        initial_loss_scale: float16 only: the dynamic loss scale a new run starts from (a resumed run restores its
            own). Overflowed steps are skipped and counted (`skipped_steps` in TensorBoard and the progress bar).

    Returns:
        The last evaluation's metrics (or the last training metrics if there is no evaluation).
    """
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {max_minutes}")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    # Non-chief workers of a multi-worker run write their (identical) checkpoints apart, as tf.distribute requires.
    own_dir = workdir if chief else os.path.join(workdir, f"worker_{strategy.cluster_resolver.task_id}")
    check_workdir(own_dir)
    check_compatible(workdir, config)
    write_config(own_dir, config, {"seed": seed, "jit": jit, "mixed_precision": mixed_precision})

    with strategy.scope():
        state = create_train_state(config, mixed_precision, initial_loss_scale)
    ckpt = state.checkpoint()
    manager = tf.train.CheckpointManager(ckpt, os.path.join(own_dir, "checkpoints"), max_to_keep=3)
    # Every worker resumes from the chief's latest checkpoint (workdir is on storage all workers share), so workers
    # killed at different moments, e.g. one between its own save and the chief's, restart at the same step.
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
        _log(f"Resumed from {latest} at step {int(state.step.numpy())}", progress)

    start = int(state.data_position.numpy())
    dist_ds = strategy.distribute_datasets_from_function(train_dataset_fn(start))
    iterator = iter(dist_ds)
    train_step = make_train_step(config, state, strategy, jit)
    evaluator = Evaluator(config, state.model, strategy)
    writers = {
        k: tf.summary.create_file_writer(os.path.join(own_dir, k) if chief else os.path.join(own_dir, "tb", k))
        for k in ("train", "eval")
    }
    name = metric_name(config)
    step = int(state.step.numpy())
    bar = _bar(config.steps, "train", progress, initial=step)
    last = {}
    started = t0 = time.perf_counter()
    budget = None if max_minutes is None else 60.0 * max_minutes
    state.metrics.read()  # start the accumulators from zero
    skipped_total = 0

    loss_scaled = isinstance(state.optimizer, keras.optimizers.LossScaleOptimizer)

    def read_metrics():
        """Waits for the steps in flight; raises (saving nothing) if any of them had a non-finite loss, or a
        non-finite gradient that no loss scale accounts for. Overflowed float16 steps were skipped: counted only."""
        m = state.metrics.read()
        norm_ok = math.isfinite(m["grad_norm"]) or (loss_scaled and m["skipped"] == m["steps"])
        if not (math.isfinite(m["loss"]) and norm_ok):
            good = manager.latest_checkpoint or "none yet"
            raise TrainingError(
                f"Non-finite loss ({m['loss']}) or gradient norm ({m['grad_norm']}) in steps "
                f"{step - m['steps'] + 1}..{step}; stopped without saving. Last good checkpoint: {good}"
            )
        return m

    while step < config.steps:
        train_step(next(iterator))  # dispatched; nothing here waits for it
        step += 1
        bar.update(1)
        out_of_time = budget is not None and time.perf_counter() - started >= budget
        final = step == config.steps or out_of_time
        evaluating = eval_dataset_fn is not None and (step % config.eval_every == 0 or final)
        saving = step % config.checkpoint_every == 0 or final
        if step % log_every == 0 or final or evaluating or saving:
            m = read_metrics()
            elapsed = time.perf_counter() - t0
            lr = float(state.learning_rate.numpy())
            postfix = {name: f"{m['metric']:.4g}", "lr": f"{lr:.2g}"}
            if loss_scaled:
                skipped_total += m["skipped"]
                postfix["skipped"] = skipped_total
            bar.set_postfix(postfix)
            last = {name: m["metric"], "loss": m["loss"], "grad_norm": m["grad_norm"]}
            with writers["train"].as_default(step=step):
                # Means over the steps since the previous summary.
                tf.summary.scalar(name, m["metric"])
                tf.summary.scalar("loss_nats_per_dim", m["loss"])
                if math.isfinite(m["grad_norm"]):
                    tf.summary.scalar("grad_norm", m["grad_norm"])
                if loss_scaled:
                    # Overflowed float16 steps (skipped, the scale halved) since the previous summary.
                    tf.summary.scalar("skipped_steps", m["skipped"])
                    tf.summary.scalar("loss_scale", float(state.optimizer.dynamic_scale.numpy()))
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("sequences_per_second", m["steps"] * config.batch_size / max(elapsed, 1e-9))
                tf.summary.scalar("wall_minutes", (time.perf_counter() - started) / 60.0)
            t0 = time.perf_counter()
        if evaluating:
            last = _evaluate_and_log(
                config, state, evaluator, eval_dataset_fn, writers["eval"], step, sample_fn, progress
            )
            if sample_metrics_fn is not None:
                with writers["eval"].as_default(step=step):
                    for tag, value in sample_metrics_fn(state.model).items():
                        tf.summary.scalar(tag, value)
            state.plateau.update(last[name], state.learning_rate)
        if saving:
            manager.save(checkpoint_number=step)
        if out_of_time:
            _log(f"Stopped at step {step}: the {max_minutes:g}-minute budget is spent", progress)
            break
    bar.close()
    for w in writers.values():
        w.flush()
    return last


def continuation_sampler(seed: int = 0) -> Callable:
    """A `sample_fn` for `train_and_evaluate`: cached ancestral sampling of the frames after the context (the same
    seed at every evaluation, so TensorBoard shows how one draw evolves with training)."""
    from vpn_tf.sampling import Sampler

    samplers = {}

    def fn(model, batch):
        sampler = samplers.setdefault(id(model), Sampler(model))
        n_ctx = model.config.context_frames
        video = batch["video"].numpy()
        return sampler.sample(
            video[:, :n_ctx],
            video.shape[1] - n_ctx,
            seed=(seed, 0),
            actions=batch["actions"].numpy() if "actions" in batch else None,
            states=batch["states"].numpy() if "states" in batch else None,
        )

    return fn


def _evaluate_and_log(config, state, evaluator, eval_dataset_fn, writer, step, sample_fn, progress):
    name = metric_name(config)
    ds = eval_dataset_fn("validation", config.eval_sequences)
    metrics = evaluator(ds)
    batch = next(iter(ds.batch(min(4, config.eval_sequences))))
    inputs = model_inputs(batch)
    video = batch["video"].numpy()
    if sample_fn is not None:
        predicted, label = np.asarray(sample_fn(state.model, batch)), "samples"
    else:
        logits = state.model.conditional_logits(**inputs)
        predicted, label = expected_frames(config, logits).numpy(), "teacher_forced_predictions"
    rows = []
    for b in range(len(video)):
        rows += [video[b], predicted[b]]
    with writer.as_default(step=step):
        for k, v in metrics.items():
            if np.ndim(v):  # per-colour figures: one curve per colour (nats_per_dim_channel/R, ...)
                for colour, value in zip("RGB", v, strict=False):
                    tf.summary.scalar(f"{k}/{colour}", value)
            else:
                tf.summary.scalar(k, v)
        # Rows: ground truth (context + future) / the model's frames under it, as in the paper's Fig. 4.
        tf.summary.image(f"{label}/truth_then_model", video_grid(rows)[None], step=step)
    _log(f"step {step}: validation {name} {metrics[name]:.4f}" + _bound(metrics), progress)
    return metrics


def _bound(metrics):
    return f" (lower bound {metrics['lower_bound']:.2f})" if "lower_bound" in metrics else ""


def _log(message, progress):
    if progress:
        print(message, file=sys.stderr, flush=True)


def _bar(total, desc, enabled, initial=0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def restore_model(workdir: str, checkpoint: str | None = None, mixed_precision: str = "float32"):
    """(config, model) from a training directory's config.json and its latest (or the given) checkpoint.

    The checkpoint is read through the same object structure that wrote it (`TrainState`: model and optimizer).
    Keras 3 layers held in Python lists (the residual blocks) are reachable in TensorFlow's object graph only through
    the optimizer's variable list, so a `tf.train.Checkpoint(model=model)` alone silently leaves them at their
    initial values; every restored weight is then checked against the checkpoint's stored value.
    """
    config = load_config(workdir)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None:
        raise TrainingError(f"No checkpoint in {os.path.join(workdir, 'checkpoints')}")
    run = {}
    if os.path.exists(os.path.join(workdir, "run.json")):
        with open(os.path.join(workdir, "run.json")) as f:
            run = json.load(f)
    state = create_train_state(config, run.get("mixed_precision", "float32"))
    state.checkpoint().restore(path).expect_partial()
    reader = tf.train.load_checkpoint(path)
    stored = {k for k in reader.get_variable_to_shape_map() if "_trainable_variables/" in k}
    prefix = (
        "optimizer/inner_optimizer" if any(k.startswith("optimizer/inner_optimizer/") for k in stored) else "optimizer"
    )
    for i, v in enumerate(state.model.trainable_variables):
        key = f"{prefix}/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in stored or not np.array_equal(reader.get_tensor(key), v.numpy()):
            raise TrainingError(
                f"{path} does not hold this model's weight {v.path}; is it a vpn_tf checkpoint of {config.name}?"
            )
    if mixed_precision == "float32" or mixed_precision == run.get("mixed_precision", "float32"):
        model = state.model
    else:
        dtype = f"mixed_{mixed_precision}"
        model = build_model(config, dtype=dtype)
        model.set_weights(state.model.get_weights())
    return config, model
