"""What a checkpoint holds (`TrainState`), the optimizer, and the step's on-device metric accumulators."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.models.vpn import build_model
from vpn_tf.training.schedule import Plateau

MIXED_PRECISION = ("float32", "bfloat16", "float16")
REQUESTED_LR_KEY = "requested_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"


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
    # The learning rate the run was last started with (NaN until recorded): lets a resume tell a new
    # `--learning_rate` (applied) from a rate the plateau has decayed (kept). See `apply_requested_learning_rate`.
    requested_learning_rate: tf.Variable
    metrics: StepMetrics = dataclasses.field(default_factory=StepMetrics)

    def checkpoint(self, requested_learning_rate: bool = True) -> tf.train.Checkpoint:
        """The checkpoint object; `requested_learning_rate=False` leaves that variable out, to restore (and check)
        checkpoints written before it existed."""
        extra = {"requested_learning_rate": self.requested_learning_rate} if requested_learning_rate else {}
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            data_position=self.data_position,
            plateau=self.plateau,
            **extra,
        )

    def restore(self, path: str, checkpoint: tf.train.Checkpoint | None = None) -> None:
        """Restores `path` through `checkpoint` (default `self.checkpoint()`; pass the one a CheckpointManager saves,
        so its save counter continues), checking that every object was restored. A checkpoint written before the
        requested learning rate was recorded restores without it (it stays NaN)."""
        checkpoint = checkpoint or self.checkpoint()
        if tf.train.load_checkpoint(path).has_tensor(REQUESTED_LR_KEY):
            checkpoint.restore(path).assert_existing_objects_matched()
        else:
            # Check every other object against the older checkpoint, then restore through `checkpoint` itself.
            self.checkpoint(requested_learning_rate=False).restore(path).assert_existing_objects_matched()
            checkpoint.restore(path).expect_partial()

    def apply_requested_learning_rate(self, requested: float) -> bool:
        """Applies `requested` (the configured learning rate) if the run was last started with another one, and
        records it; returns True if the rate changed. Call once the state is new or restored.

        A run resumed with its own rate keeps the rate the plateau decayed it to. A checkpoint without a record
        (written before it existed) compares with the rate it holds. The decision reads only the checkpoint and the
        command line, so every worker of a cluster makes the same one.
        """
        recorded = float(self.requested_learning_rate.numpy())
        if math.isnan(recorded):  # the optimizer holds its rate in float32
            unchanged = np.float32(self.learning_rate.numpy()) == np.float32(requested)
        else:
            unchanged = recorded == requested
        self.requested_learning_rate.assign(requested)
        if unchanged:
            return False
        self.learning_rate.assign(requested)
        self.plateau.bad_evals.assign(0)  # a fresh patience count for the new rate
        return True

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
        requested_learning_rate=tf.Variable(
            math.nan, dtype=tf.float64, trainable=False, name="requested_learning_rate"
        ),
    )
