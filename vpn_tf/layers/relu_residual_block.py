"""The ReLU residual block variant (Tables 2 and 3 of the VPN paper)."""

from __future__ import annotations

import keras
from keras import ops

from vpn_tf.layers.residual_block import ResidualBlockBase
from vpn_tf.layers.stepping import WHOLE_FRAME


@keras.saving.register_keras_serializable(package="vpn_tf")
class ReLUResidualBlock(ResidualBlockBase):
    """Bottleneck residual block with identity mapping (pre-activation):
    h + W3 * relu(W2 * relu(W1 * relu(h))), 1x1 2c -> c, 3x3 c -> c (dilated), 1x1 c -> 2c.

    The paper uses it with doubled block counts (16 encoder / 24 decoder blocks) to match the RMB's receptive field.
    Departure: He et al. use batch normalisation before each ReLU; the VPN paper does not mention normalisation and
    batch statistics would leak information across pixels of the frame being predicted, so there is none.

    References: He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016; VPN paper §4.2, §5.1.
    """

    def build_branch(self, input_shape):
        channels = int(input_shape[-1])
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden,)
        self.reduce = self.conv(self.hidden, 1, "reduce")
        self.reduce.build(input_shape)
        self.spatial = self.conv(self.hidden, 3, "spatial", dilation_rate=self.dilation_rate)
        self.spatial.build(hidden_shape)
        self.expand = self.conv(channels, 1, "expand")
        self.expand.build(hidden_shape)

    def branch(self, h, stepper=WHOLE_FRAME):
        h = stepper.conv(self.reduce, ops.relu(h))
        h = stepper.conv(self.spatial, ops.relu(h))
        return stepper.conv(self.expand, ops.relu(h))
