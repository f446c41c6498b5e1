"""The temporal part of sampling: the encoder and ConvLSTM one frame at a time, the per-frame conditioning, and the
past frames a decoder reads."""

from __future__ import annotations

import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.models.vpn import condition_vectors, scale_pixels


def frame_conditions(config: VPNConfig, actions, states, num_total, batch=None):
    """Per-frame conditioning `[batch, num_total, D]` float32 as in training (§6.1; `condition_vectors`), or None."""
    if not config.conditional:
        return None
    actions = None if actions is None else tf.cast(actions, tf.float32)
    states = None if states is None else tf.cast(states, tf.float32)
    return condition_vectors(config, actions, states, num_total)


def recent_frames(config: VPNConfig, video):
    """The last `decoder_past_frames` frames of uint8 `video` `[B, T, H, W, C]`, most recent first, black where the
    video is shorter: `[B, k, H, W, C]` (what `VideoPixelNetwork.decoder_context` reads; k = 0 gives an empty
    tensor)."""
    k = config.decoder_past_frames
    video = tf.convert_to_tensor(video)
    padded = tf.concat([tf.zeros_like(video[:, :1])] * k + [video], axis=1) if k else video
    return tf.reverse(padded[:, tf.shape(padded)[1] - k :], axis=[1])


def push_frame(recent, frame):
    """`recent` with uint8 `frame` `[B, H, W, C]` as its most recent entry (the oldest dropped)."""
    return tf.concat([frame[:, None], recent[:, :-1]], axis=1)[:, : tf.shape(recent)[1]]


class TemporalState:
    """Runs a model's encoder and ConvLSTM cell one frame at a time (for sampling)."""

    def __init__(self, model):
        self.model = model
        self.config: VPNConfig = model.config

    def zeros(self, batch):
        c = self.config
        z = tf.zeros([batch, c.height, c.width, c.lstm_channels], self.model.compute_dtype)
        return z, z

    def step(self, state, frame, cond_t):
        """Encodes uint8 `frame` [B, H, W, C] with its condition and advances the ConvLSTM -> new (h, c)."""
        x = scale_pixels(frame, self.model.compute_dtype)
        cond = None if cond_t is None else tf.cast(cond_t, self.model.compute_dtype)
        encoded = self.model.encoder(x, condition=cond)
        return self.model.core.step(encoded, state)

    def run(self, frames, conds):
        """The state after the uint8 frames `[B, T, H, W, C]` (T >= 1) have been read."""
        batch = tf.shape(frames)[0]
        n = tf.shape(frames)[1]

        def body(t, h, c):
            cond_t = None if conds is None else conds[:, t]
            h, c = self.step((h, c), frames[:, t], cond_t)
            return t + 1, h, c

        h0, c0 = self.zeros(batch)
        _, h, c = tf.while_loop(lambda t, h, c: t < n, body, (tf.constant(0), h0, c0))
        return h, c
