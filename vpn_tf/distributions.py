"""Likelihoods of the VPN's conditionals, as pure functions apart from the network.

Shapes: `logits` are `[..., C, K]` (K = 1 for the sigmoid output, 256 for the softmax); `pixels` are the uint8 (or
integer 0..255) values `[..., C]` they predict. Every function returns one value per dimension `[..., C]` in nats;
reduce with `per_frame` / `per_dimension`.
"""

from __future__ import annotations

import math

import tensorflow as tf

from vpn_tf.rng import ALG

LN2 = math.log(2.0)


def grey_targets(pixels):
    """z = x / 255: Moving MNIST grey levels read as probabilities (§5, Eq. 5)."""
    return tf.cast(pixels, tf.float32) / 255.0


def sigmoid_cross_entropy(logits, pixels):
    """Soft-target sigmoid cross-entropy H(z, y) of Eq. 5 per pixel, y = sigmoid(logit), z = x / 255.

    -[z log y + (1 - z) log(1 - y)] = softplus(l) - z * l, which is exact and stable for any logit.

    Args:
        logits: `[..., 1, 1]` float.
        pixels: `[..., 1]` integer 0..255.

    Returns:
        `[..., 1]` float32 nats.
    """
    logits = tf.cast(logits, tf.float32)[..., 0]
    z = grey_targets(pixels)
    return tf.nn.softplus(logits) - z * logits


def binarize(pixels, seed):
    """Binary pixels (0 or 255, uint8) drawn independently with P(255) = x / 255: a frame the Eq. 5 targets, read
    as probabilities, could have produced. `seed` is a stateless `[2]` int seed (same seed, same draw)."""
    z = tf.random.stateless_uniform(tf.shape(pixels), seed, dtype=tf.float32, alg=ALG)  # same bits everywhere
    return tf.where(z < grey_targets(pixels), tf.constant(255, tf.uint8), tf.constant(0, tf.uint8))


def binary_entropy(pixels):
    """The per-pixel lower bound of Eq. 5: H(z, z) = -[z log z + (1 - z) log(1 - z)], with 0 log 0 = 0."""
    z = grey_targets(pixels)

    def xlogx(p):
        return tf.math.multiply_no_nan(tf.math.log(p), p)

    return -(xlogx(z) + xlogx(1.0 - z))


def over_last_axis(fn, logits):
    """`fn` (a softmax-like op over the last axis) applied to a 2-D view of `logits`, reshaped back.

    Video logits are 6-D ([batch, T, H, W, C, K]) and oneDNN's softmax kernels take at most 5 dimensions ("Input dims
    must be <= 5 and >=1"), while every kernel library accepts 2-D.
    """
    shape = tf.shape(logits)
    return tf.reshape(fn(tf.reshape(logits, [-1, shape[-1]])), shape)


def categorical_log_prob(logits, pixels):
    """log p(x) under a 256-way softmax per colour channel.

    Args:
        logits: `[..., C, 256]`.
        pixels: `[..., C]` integer 0..255.

    Returns:
        `[..., C]` float32 nats (<= 0).
    """
    logits = tf.cast(logits, tf.float32)
    log_p = over_last_axis(tf.nn.log_softmax, logits)
    # A one-hot contraction rather than a gather: a gather's gradient is a scatter over every dimension, which XLA
    # on GPUs runs serially under op determinism; the contraction's gradient is an elementwise product.
    one_hot = tf.one_hot(tf.cast(pixels, tf.int32), tf.shape(logits)[-1], dtype=tf.float32)
    return tf.reduce_sum(log_p * one_hot, axis=-1)


def log_prob(logits, pixels, output: str):
    """Per-dimension log-likelihood in nats for the config's `output` ("sigmoid": minus Eq. 5; "softmax")."""
    if output == "sigmoid":
        return -sigmoid_cross_entropy(logits, pixels)
    if output == "softmax":
        return categorical_log_prob(logits, pixels)
    raise ValueError(f"output must be 'sigmoid' or 'softmax'. Received: output={output!r}")


def mean(logits, output: str):
    """The mean of each dimension's distribution on the 0..255 scale, `[..., C, K]` -> float32 `[..., C]`."""
    logits = tf.cast(logits, tf.float32)
    if output == "sigmoid":
        return tf.sigmoid(logits[..., 0]) * 255.0
    if output == "softmax":
        probs = over_last_axis(tf.nn.softmax, logits)
        return tf.linalg.matvec(probs, tf.range(tf.shape(logits)[-1], dtype=tf.float32))
    raise ValueError(f"output must be 'sigmoid' or 'softmax'. Received: output={output!r}")


def per_frame(values):
    """Sums `[batch, T, H, W, C]` per-dimension values over each frame -> `[batch, T]` (nats/frame)."""
    return tf.reduce_sum(values, axis=[2, 3, 4])


def per_dimension(values):
    """Means `[batch, T, H, W, C]` per-dimension values over every dimension of a video -> `[batch]` (nats/dim)."""
    return tf.reduce_mean(values, axis=[1, 2, 3, 4])


def nats_to_bits(nats):
    return nats / LN2


def lower_bound_nats_per_frame(video, context_frames: int):
    """Eq. 5's lower bound for grey-level targets: binary entropy summed over each predicted frame.

    Args:
        video: `[batch, T, H, W, 1]` uint8.
        context_frames: leading frames that are given (10 for Moving MNIST).

    Returns:
        `[batch]` float32: nats/frame averaged over the frames after the context.
    """
    return tf.reduce_mean(per_frame(binary_entropy(video[:, context_frames:])), axis=1)
