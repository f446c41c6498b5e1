"""PixelCNN decoder conditioned on the temporal context (§3.2 of the VPN paper)."""

from __future__ import annotations

import keras

from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.models.decoder_base import DecoderBase


@keras.saving.register_keras_serializable(package="vpn_tf")
class PixelCNNDecoder(DecoderBase):
    """Predicts p(x_{t,i,j,c} | x_<) for every dimension of frame t at once (teacher forcing).

    Guarantee: the logits of dimension (i, j, c) depend on frame t only through pixels before (i, j) in raster
    order and colours before c at (i, j); the context (ConvLSTM state after frames < t) is unmasked. Frame t enters
    only through a type-A masked convolution, so no layer ever holds the raw current value in the channel group that
    predicts it, and the multiplicative units' identity term g2 * h cannot pass it through. Every later convolution is
    type B with group-aligned channels (channel k -> colour k mod channels).

    The context is added to the input layer through a 1x1 convolution (the paper does not say how the context enters
    the PixelCNN; addition at the input is the simplest choice that lets every block see it through the residual
    stream).

    Args:
        first_kernel_size: kernel of the type-A input layer.
        **kwargs: as in `DecoderBase` (num_blocks masked blocks, no dilation, as in the paper).

    Call arguments:
        frame: `[batch, height, width, channels]`, frame t scaled to [-1, 1].
        context: `[batch, height, width, lstm_channels]`.
        condition: `[batch, condition_dim]` when condition_dim > 0.

    Returns:
        float32 logits `[batch, height, width, channels, num_classes]`.
    """

    masked = True

    def __init__(self, hidden, num_blocks, first_kernel_size=7, **kwargs):
        super().__init__(hidden, num_blocks, **kwargs)
        self.first_kernel_size = first_kernel_size

    def build(self, frame_shape, context_shape=None, condition_shape=None):
        width = 2 * self.hidden
        self.frame_input = MaskedConv2D(
            width,
            self.first_kernel_size,
            mask_type="A",
            color_groups=self.channels,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="frame_input",
        )
        self.frame_input.build(frame_shape)
        self.context_input = Conv2D(
            width, 1, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="context_input"
        )
        self.context_input.build(tuple(frame_shape[:-1]) + (int(context_shape[-1]),))
        self.build_blocks_and_head(tuple(frame_shape[:-1]) + (width,))

    def call(self, frame, context, condition=None):
        return self.blocks_and_head(self.frame_input(frame) + self.context_input(context), condition)

    def get_config(self):
        config = super().get_config()
        config["first_kernel_size"] = self.first_kernel_size
        return config
