"""Multiplicative unit (MU), Eq. 3 of the VPN paper."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.layers.stepping import (  # noqa: F401  (the switches are part of this module's API)
    WHOLE_FRAME,
    set_xla_gate_fusion,
    xla_gate_fusion,
    xla_gate_fusion_enabled,
)


def _gating(z, bias, h, c: int):
    """g1 * tanh(g2 * h + g3 * u) from the fused gate convolution z = [W1..W4 * h] (without its bias)."""
    z = tf.nn.bias_add(z, bias)
    g = tf.sigmoid(z[..., : 3 * c])
    u = tf.tanh(z[..., 3 * c :])
    return g[..., :c] * tf.tanh(g[..., c : 2 * c] * h + g[..., 2 * c :] * u)


# The gating is a dozen memory-bound elementwise ops (and as many in the backward pass); unfused they cost as much as
# the 3x3 convolution at c = 128 and 2.6x its time at c = 16 on our CPU. XLA fuses them into one loop (forward and
# backward) while the convolution stays on oneDNN (XLA's own CPU convolutions are far slower). `bench/` measures it.
_gating_xla = tf.function(_gating, jit_compile=True, reduce_retracing=True, autograph=False)


@keras.saving.register_keras_serializable(package="vpn_tf")
class MultiplicativeUnit(keras.layers.Layer):
    """MU(h) = g1 * tanh(g2 * h + g3 * u), with g1..g3 = sigmoid(W1..3 * h) and u = tanh(W4 * h).

    The four 3x3 convolutions are computed as one convolution with 4c outputs (same arithmetic, one kernel launch
    and one read of h instead of four). When `masked`, that convolution is a type-B `MaskedConv2D` whose output
    channel k of every gate belongs to colour group k mod `color_groups`, the same group as channel k of h, so the
    identity term g2 * h mixes only values of one group: the unit is causal whenever h is (the decoder guarantees h
    never holds the raw current pixel, see `PixelCNNDecoder`).

    Args:
        kernel_size: spatial kernel of the gate convolution (3 in the paper).
        dilation_rate: dilation of that convolution (encoders only in the paper).
        masked: use a type-B masked convolution (PixelCNN decoders).
        color_groups: colour groups of the masked convolution (1 or 3).
        kernel_initializer, bias_initializer: initializers of the gate convolution.

    Call arguments:
        inputs: `[batch, height, width, c]`.

    Returns:
        `[batch, height, width, c]`.

    Reference: Kalchbrenner et al., "Video Pixel Networks", ICML 2017, §4.1.
    """

    def __init__(
        self,
        kernel_size=3,
        dilation_rate=1,
        masked=False,
        color_groups=1,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if dilation_rate < 1:
            raise ValueError(f"dilation_rate must be >= 1. Received: dilation_rate={dilation_rate}")
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.masked = masked
        self.color_groups = color_groups
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.channels = channels
        common = dict(
            kernel_size=self.kernel_size,
            dilation_rate=self.dilation_rate,
            padding="same",
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="gates",
        )
        if self.masked:
            self.gates = MaskedConv2D(
                4 * channels, mask_type="B", color_groups=self.color_groups, output_splits=4, **common
            )
        else:
            self.gates = Conv2D(4 * channels, **common)
        self.gates.build(input_shape)

    def call(self, inputs):
        return self.forward(inputs, WHOLE_FRAME)

    def forward(self, inputs, stepper):
        """The unit's math for any stepper (`vpn_tf.layers.stepping`): whole frames or one pixel."""
        # The gate convolution's bias is added inside the fused gating rather than by the convolution: at c = 16 a
        # convolution with a bias (and its bias gradient) runs measurably slower on oneDNN, while in the XLA fusion the
        # addition and the bias gradient's reduction ride along with work that reads z anyway.
        z = stepper.conv(self.gates, inputs, bias=False)
        gating = _gating_xla if stepper.fuse_gating else _gating
        return gating(z, ops.cast(self.gates.bias, z.dtype), ops.cast(inputs, z.dtype), self.channels)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate,
                "masked": self.masked,
                "color_groups": self.color_groups,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
