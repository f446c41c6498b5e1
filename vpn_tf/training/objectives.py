"""What training optimises and reports: the paper's metric, the loss, and the batch's log-probability (§5, §6)."""

from __future__ import annotations

import keras
import tensorflow as tf

from vpn_tf import distributions
from vpn_tf.config import VPNConfig


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
