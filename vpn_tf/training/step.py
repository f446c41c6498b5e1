"""One synchronous data-parallel training step."""

from __future__ import annotations

import keras
import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.training.objectives import batch_log_prob, per_example_loss, per_example_nats
from vpn_tf.training.state import TrainState


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
        forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)

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

    return tf.function(step, autograph=False)  # no tensor-valued Python control flow to convert (see sampler.py)
