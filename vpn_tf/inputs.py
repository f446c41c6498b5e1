"""Validation of what users pass at the API boundary: uint8 videos and float per-frame vectors."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vpn_tf.config import VPNConfig

_INTEGER_DTYPES = (tf.uint8, tf.int32, tf.int64, tf.int16, tf.uint16)


def _static_shape(x):
    return tuple(x.shape.as_list()) if x.shape.rank is not None else None


def validate_video(video, config: VPNConfig, min_frames: int | None = None):
    """Checks a video against the config and returns it as a uint8 tensor.

    Accepts uint8, or another integer dtype whose values lie in 0..255 (checked). Raises a ValueError naming the
    expected and received dtype, rank, shape or value range.
    """
    if (
        isinstance(video, np.ndarray)
        and video.dtype.kind == "f"
        or (hasattr(video, "dtype") and tf.as_dtype(video.dtype).is_floating)
    ):
        raise ValueError(
            f"video must hold raw pixel values as uint8 in [0, 255]; received dtype {tf.as_dtype(video.dtype).name}. "
            "Do not rescale frames before passing them."
        )
    video = tf.convert_to_tensor(video)
    if video.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"video must have dtype uint8. Received: dtype={video.dtype.name}")
    shape = _static_shape(video)
    expected = (None, None, *config.frame_shape)
    if shape is None or len(shape) != 5:
        raise ValueError(
            f"video must have rank 5 [batch, time, height, width, channels] = {_fmt(expected)}. Received: shape={shape}"
        )
    for axis, name in ((2, "height"), (3, "width"), (4, "channels")):
        if shape[axis] is not None and shape[axis] != expected[axis]:
            raise ValueError(
                f"video {name} must be {expected[axis]} for config {config.name!r}: expected shape {_fmt(expected)}. "
                f"Received: shape={shape}"
            )
    needed = config.context_frames + 1 if min_frames is None else min_frames
    if shape[1] is not None and shape[1] < needed:
        raise ValueError(
            f"video needs at least {needed} frames (context_frames={config.context_frames} plus one to predict). "
            f"Received: {shape[1]} frames, shape={shape}"
        )
    if video.dtype != tf.uint8:
        if tf.executing_eagerly():
            lo, hi = int(tf.reduce_min(video)), int(tf.reduce_max(video))
            if lo < 0 or hi > 255:
                raise ValueError(f"video values must lie in [0, 255]. Received: min={lo}, max={hi}")
        else:
            tf.debugging.assert_greater_equal(video, tf.cast(0, video.dtype), message="video values must be >= 0")
            tf.debugging.assert_less_equal(video, tf.cast(255, video.dtype), message="video values must be <= 255")
        video = tf.cast(video, tf.uint8)
    return video


def validate_vector(x, name: str, dim: int, batch, frames, min_frames: int | None = None):
    """Checks per-frame `actions` / `states` `[batch, time, dim]` and returns them as float32."""
    if x is None:
        raise ValueError(f"This config is conditioned on {name} ({name[:-1]} dim {dim}); pass `{name}`.")
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be floating point [batch, time, {dim}]. Received: dtype={x.dtype.name}")
    x = tf.cast(x, tf.float32)
    shape = _static_shape(x)
    if shape is None or len(shape) != 3 or (shape[2] is not None and shape[2] != dim):
        raise ValueError(f"{name} must have shape [batch, time, {dim}]. Received: shape={shape}")
    if batch is not None and shape[0] is not None and shape[0] != batch:
        raise ValueError(f"{name} batch size {shape[0]} does not match the video's batch size {batch}")
    need = frames if min_frames is None else min_frames
    if need is not None and shape[1] is not None and shape[1] < need:
        raise ValueError(f"{name} must cover at least {need} frames. Received: shape={shape}")
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(x))):
            raise ValueError(f"{name} must be finite. Received values with NaN or Inf")
    else:
        x = tf.debugging.assert_all_finite(x, f"{name} must be finite")
    return x


def validate_inputs(config: VPNConfig, video, actions=None, states=None):
    """Validates a (video, actions, states) triple; returns the canonical tensors (uint8, float32, float32).

    Actions must cover every frame of the video; states must cover at least the context frames (states of the
    predicted frames are never used, §6.1). Vectors passed to an unconditional config are rejected rather than
    silently ignored.
    """
    video = validate_video(video, config)
    batch, frames = _static_shape(video)[:2]
    if config.action_dim:
        actions = validate_vector(actions, "actions", config.action_dim, batch, frames)
    elif actions is not None:
        raise ValueError(f"Config {config.name!r} is not action-conditional (action_dim=0) but actions were passed.")
    if config.state_dim:
        states = validate_vector(states, "states", config.state_dim, batch, frames, min_frames=config.context_frames)
    elif states is not None:
        raise ValueError(f"Config {config.name!r} is not state-conditional (state_dim=0) but states were passed.")
    return video, actions, states


def _fmt(shape):
    return "[" + ", ".join("None" if s is None else str(s) for s in shape) + "]"
