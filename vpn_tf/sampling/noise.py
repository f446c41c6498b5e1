"""Stateless randomness for sampling, and drawing one dimension from its conditional.

Every dimension is drawn with random numbers keyed by a user `seed[2]`: frame t has the key `fold_in(seed, t)` and
pixel (i, j) hashes that key with i * W + j (`pixel_noise`), so the same seed gives the same video and different
seeds give different videos, whichever sampler runs, with or without XLA.

Moving MNIST (sigmoid) models draw Bernoulli pixels: 255 with probability sigmoid(logit / temperature), else 0 (the
likelihood reads grey levels as probabilities, so sampled frames are binary). Softmax models draw each colour from
its 256-way categorical (Gumbel-max with the stateless noise; never argmax of the logits).
"""

from __future__ import annotations

import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.rng import ALG


def frame_seed(seed, t):
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), tf.cast(t, tf.int64), alg=ALG)


def _mix32(x):
    """A 32-bit avalanche hash (the "lowbias32" finaliser): every input bit flips each output bit with p ~ 1/2."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def pixel_noise(config: VPNConfig, seed_t, index, batch, batch_offset=0):
    """Uniform noise in (0, 1) for pixel `index` (= i * W + j) of a frame: `[batch, C, K]` (K = 1 for sigmoid); for a
    vector of pixel indices `[N]`, `[N, batch, C, K]` (the same numbers, pixel by pixel).

    The frame key `seed_t` comes from TensorFlow's stateless RNG (`frame_seed`). Within the frame, noise is a
    counter-based integer hash of (key, pixel, element) rather than `tf.random.stateless_uniform`, because XLA's
    stateless RNG kernels produce different streams from the non-XLA kernels: samples would otherwise change with
    `jit`. The hash is plain 32-bit integer arithmetic, identical on every device and compiler; 24 bits of it make
    each uniform (the Gumbel noise of a softmax draw is therefore capped at ~17 instead of ~36: immaterial).
    `batch_offset` is the first row's index in the whole batch, so a group of rows sampled on its own gets the
    noise those rows get in the whole batch.
    """
    words = tf.reshape(tf.bitcast(tf.cast(seed_t, tf.int64), tf.uint32), [4])
    index = tf.convert_to_tensor(index)
    key = _mix32(tf.cast(index, tf.uint32) + tf.constant(0x9E3779B9, tf.uint32))
    for w in tf.unstack(words):
        key = _mix32(tf.bitwise.bitwise_xor(key, w))
    key = key[..., None]  # one key per pixel, broadcast over the pixel's elements
    n = config.channels * config.num_classes
    counter = tf.cast(tf.range(batch * n) + tf.cast(batch_offset, tf.int32) * n, tf.uint32)
    bits = _mix32(tf.bitwise.bitwise_xor(_mix32(counter * tf.constant(0x85EBCA6B, tf.uint32) + key), key))
    u = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) + 0.5) * (1.0 / (1 << 24))
    shape = tf.concat([tf.shape(index), tf.stack([batch, config.channels, config.num_classes])], axis=0)
    return tf.reshape(u, shape)


def draw_noise(config: VPNConfig, noise):
    """What `draw_from` compares the logits with, from uniform `noise`: the noise itself for sigmoid outputs, Gumbel
    noise for softmax ones. Elementwise, so the row loop transforms a whole row's noise at once."""
    if config.output == "sigmoid":
        return noise
    return -tf.math.log(-tf.math.log(noise))


def draw_from(config: VPNConfig, logits, noise, temperature):
    """Samples uint8 values from logits `[..., K]` with matching `draw_noise` output `[..., K]` -> `[...]`."""
    logits = tf.cast(logits, tf.float32) / temperature
    if config.output == "sigmoid":
        return tf.where(
            noise[..., 0] < tf.sigmoid(logits[..., 0]), tf.constant(255, tf.uint8), tf.constant(0, tf.uint8)
        )
    return tf.cast(tf.argmax(logits + noise, axis=-1), tf.uint8)


def draw(config: VPNConfig, logits, noise, temperature):
    """Samples uint8 values from logits `[..., K]` with matching uniform `noise` `[..., K]` -> `[...]`."""
    return draw_from(config, logits, draw_noise(config, noise), temperature)
