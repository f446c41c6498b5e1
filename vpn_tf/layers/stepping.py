"""How a layer's convolutions are evaluated: on whole frames, or one pixel at a time (cached sampling).

Every decoder part (masked input convolution, residual blocks, multiplicative units, context projections, output
head) writes its math once, in a `forward(..., stepper)` method that its Keras `call` runs with `WHOLE_FRAME`. The
cached samplers (`vpn_tf.sampling.cached`) run the same `forward` with a stepper that evaluates each convolution at
the current pixel from activation caches. So the teacher-forced model and the samplers cannot drift apart: a new
block kind, or a change to a block's math, reaches both.

A stepper provides:
- `conv(layer, x, bias=True)`: `layer`'s convolution of `x` (its effective, masked kernel), with or without its
  bias. Whole frame: `[B, H, W, cin] -> [B, H, W, cout]`; at a pixel: `[B, cin] -> [B, cout]`, where `x` is the
  layer's input at the pixel and the inputs at earlier pixels come from the stepper's caches.
- `frame_map(fn)`: `fn()` computes tensors that do not depend on the frame's pixels (the context's projections, a
  conditioning bias), `[B, H, W, C]` or `[B, 1, 1, C]`, possibly nested. Whole frame: `fn()` as it is. At a pixel:
  the value at the pixel, `[B, C]`, with `fn` run once per frame, outside the pixel loop.
- `apply(layer, *args, **kwargs)`: runs a sub-layer that has a `forward` (its Keras `call` on whole frames).
- `fuse_gating`: whether the multiplicative units may use their XLA-fused gating (whole frames only: in a pixel
  loop the whole loop is compiled, or not at all).
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

_FUSION = {"xla": True}


def set_xla_gate_fusion(enabled: bool) -> None:
    """Process-wide: whether multiplicative units trace their gating as an XLA-fused function (the default) or as
    plain TensorFlow ops (`train.py --xla_gating false`, for a host whose XLA toolchain fails, e.g. a GPU without a
    working ptxas). Same values either way; functions already traced keep their choice."""
    _FUSION["xla"] = bool(enabled)


def xla_gate_fusion_enabled() -> bool:
    return _FUSION["xla"]


@contextlib.contextmanager
def xla_gate_fusion(enabled: bool):
    """Within the block, multiplicative units trace their gating without (or with) an XLA cluster.

    Exports use `xla_gate_fusion(False)` by default: TF Serving runs XLA-marked functions on CPU only with
    `--xla_cpu_compilation_enabled=true`.
    """
    previous = _FUSION["xla"]
    _FUSION["xla"] = enabled
    try:
        yield
    finally:
        _FUSION["xla"] = previous


class WholeFrame:
    """Evaluates every convolution on whole frames (teacher forcing): what the layers' `call`s use."""

    pixelwise = False

    @property
    def fuse_gating(self) -> bool:
        return xla_gate_fusion_enabled()

    def conv(self, layer, x, bias: bool = True):
        if bias:
            return layer(x)
        return layer.convolution_op(x, layer.kernel)

    def frame_map(self, fn):
        return fn()

    def apply(self, layer, *args, **kwargs):
        """Runs a sub-layer: its Keras `call` on whole frames; its `forward` with this stepper at a pixel."""
        return layer(*args, **kwargs)


WHOLE_FRAME = WholeFrame()


def effective_kernel(layer):
    """A convolution layer's kernel as its `call` applies it (masked for `MaskedConv2D`), in its compute dtype."""
    kernel = layer.kernel
    mask = getattr(layer, "mask", None)
    if mask is not None:
        kernel = kernel * tf.constant(mask, dtype=kernel.dtype)
    return tf.cast(kernel, layer.compute_dtype)
