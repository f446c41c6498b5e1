"""Keras layers of the Video Pixel Network, one paper concept per file."""

from vpn_tf.layers.conditioning import VectorConditioning
from vpn_tf.layers.conv_lstm import ConvLSTM
from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D, causal_mask, channel_groups
from vpn_tf.layers.multiplicative_unit import MultiplicativeUnit
from vpn_tf.layers.relu_residual_block import ReLUResidualBlock
from vpn_tf.layers.residual_multiplicative_block import ResidualMultiplicativeBlock

__all__ = [
    "Conv2D",
    "ConvLSTM",
    "MaskedConv2D",
    "MultiplicativeUnit",
    "ReLUResidualBlock",
    "ResidualMultiplicativeBlock",
    "VectorConditioning",
    "causal_mask",
    "channel_groups",
]
