"""PixelCNN decoder conditioned on the temporal context (§3.2 of the VPN paper)."""

from __future__ import annotations

import keras

from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.models.blocks import residual_block
from vpn_tf.models.output_head import OutputHead


@keras.saving.register_keras_serializable(package="vpn_tf")
class PixelCNNDecoder(keras.layers.Layer):
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
        hidden: c (blocks have 2c inputs and outputs).
        num_blocks: l, masked residual blocks (no dilation, as in the paper).
        block: "rmb" or "relu".
        channels: colour channels of the frames (1 or 3).
        num_classes: logits per dimension (1 or 256).
        top_channels: width of the topmost layer.
        first_kernel_size: kernel of the type-A input layer.
        condition_dim: per-frame conditioning vector size (0: none), added in every block.

    Call arguments:
        frame: `[batch, height, width, channels]`, frame t scaled to [-1, 1].
        context: `[batch, height, width, lstm_channels]`.
        condition: `[batch, condition_dim]` when condition_dim > 0.

    Returns:
        float32 logits `[batch, height, width, channels, num_classes]`.
    """

    def __init__(
        self,
        hidden,
        num_blocks,
        block="rmb",
        channels=1,
        num_classes=1,
        top_channels=768,
        first_kernel_size=7,
        condition_dim=0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.num_blocks = num_blocks
        self.block = block
        self.channels = channels
        self.num_classes = num_classes
        self.top_channels = top_channels
        self.first_kernel_size = first_kernel_size
        self.condition_dim = condition_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, frame_shape, context_shape=None, condition_shape=None):
        width = 2 * self.hidden
        hidden_shape = tuple(frame_shape[:-1]) + (width,)
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
        self.context_input = keras.layers.Conv2D(
            width, 1, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="context_input"
        )
        self.context_input.build(tuple(frame_shape[:-1]) + (int(context_shape[-1]),))
        self.blocks = []
        for i in range(self.num_blocks):
            b = residual_block(
                self.block,
                hidden=self.hidden,
                masked=True,
                color_groups=self.channels,
                condition_dim=self.condition_dim,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            b.build(hidden_shape)
            self.blocks.append(b)
        self.head = OutputHead(
            self.top_channels,
            self.channels,
            self.num_classes,
            masked=True,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="head",
        )
        self.head.build(hidden_shape)

    def call(self, frame, context, condition=None):
        h = self.frame_input(frame) + self.context_input(context)
        for b in self.blocks:
            h = b(h, condition=condition)
        return self.head(h)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden": self.hidden,
                "num_blocks": self.num_blocks,
                "block": self.block,
                "channels": self.channels,
                "num_classes": self.num_classes,
                "top_channels": self.top_channels,
                "first_kernel_size": self.first_kernel_size,
                "condition_dim": self.condition_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
