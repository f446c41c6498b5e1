"""The reference samplers: the naive VPN frame (the whole decoder rerun for every dimension) and the baseline's
frame (every pixel at once: its conditionals do not depend on the frame)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vpn_tf.models.vpn import scale_pixels
from vpn_tf.sampling.noise import draw, pixel_noise


def naive_frame(model, h, cond_t, seed_t, temperature, rows=None):
    """The reference: sample one frame by rerunning the whole decoder for every dimension (eager loop).

    `rows` limits generation to the first rows (benchmarks time a few rows and scale); the rest stay 0.
    """
    c = model.config
    height, width, ch = c.frame_shape
    batch = int(h.shape[0])
    frame = np.zeros([batch, height, width, ch], np.uint8)
    decoder = _compiled_decoder(model)
    dec_cond = None if cond_t is None else tf.cast(cond_t, model.compute_dtype)
    context = tf.cast(h, model.compute_dtype)
    for index in range((rows or height) * width):
        i, j = index // width, index % width
        noise = pixel_noise(c, seed_t, index, batch)
        for colour in range(ch):
            logits = decoder(tf.constant(frame), context, dec_cond)
            frame[:, i, j, colour] = draw(c, logits[:, i, j, colour], noise[:, colour], temperature).numpy()
    return tf.constant(frame)


def _compiled_decoder(model):
    if getattr(model, "_vpn_naive_decoder", None) is None:

        @tf.function(reduce_retracing=True, autograph=False)
        def run(frame, context, cond):
            return model.decoder(scale_pixels(frame, model.compute_dtype), context, condition=cond)

        model._vpn_naive_decoder = run
    return model._vpn_naive_decoder


def baseline_frame(model, h, cond_t, seed_t, temperature):
    """The baseline's frame: every pixel drawn at once from its conditional given the past frames only."""
    c = model.config
    dec_cond = None if cond_t is None else tf.cast(cond_t, model.compute_dtype)
    logits = model.decoder(tf.cast(h, model.compute_dtype), condition=dec_cond)  # [B, H, W, C, K]
    batch = tf.shape(h)[0]
    noise = pixel_noise(c, seed_t, tf.range(c.height * c.width), batch)  # [H*W, B, C, K]
    noise = tf.transpose(tf.reshape(noise, [c.height, c.width, batch, c.channels, c.num_classes]), [2, 0, 1, 3, 4])
    return draw(c, logits, noise, temperature)
