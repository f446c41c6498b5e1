"""Residual multiplicative block (RMB), Eq. 4 of the VPN paper."""

from __future__ import annotations

import keras

from vpn_tf.layers.multiplicative_unit import MultiplicativeUnit
from vpn_tf.layers.residual_block import ResidualBlockBase
from vpn_tf.layers.stepping import WHOLE_FRAME


@keras.saving.register_keras_serializable(package="vpn_tf")
class ResidualMultiplicativeBlock(ResidualBlockBase):
    """RMB(h) = h + W4 * MU(MU(W1 * h)): 1x1 conv 2c -> c (no activation), two 3x3 MUs, 1x1 conv c -> 2c.

    The masked variant (decoders) masks every convolution with type B and group-aligned channels; see
    `ResidualBlockBase` for the arguments and the causality argument.

    Reference: Kalchbrenner et al., "Video Pixel Networks", ICML 2017, §4.2, Fig. 2.
    """

    def build_branch(self, input_shape):
        channels = int(input_shape[-1])
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden,)
        self.reduce = self.conv(self.hidden, 1, "reduce")
        self.reduce.build(input_shape)
        self.mu1, self.mu2 = (
            MultiplicativeUnit(
                3,
                dilation_rate=self.dilation_rate,
                masked=self.masked,
                color_groups=self.color_groups,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )
            for name in ("mu1", "mu2")
        )
        self.mu1.build(hidden_shape)
        self.mu2.build(hidden_shape)
        self.expand = self.conv(channels, 1, "expand")
        self.expand.build(hidden_shape)

    def branch(self, h, stepper=WHOLE_FRAME):
        h = stepper.conv(self.reduce, h)
        h = stepper.apply(self.mu2, stepper.apply(self.mu1, h))
        return stepper.conv(self.expand, h)
