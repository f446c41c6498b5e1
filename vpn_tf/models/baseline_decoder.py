"""The baseline's decoder (§2.1, §3.3 of the VPN paper): an unmasked CNN that never sees frame t."""

from __future__ import annotations

import keras

from vpn_tf.models.blocks import residual_block
from vpn_tf.models.output_head import OutputHead


@keras.saving.register_keras_serializable(package="vpn_tf")
class BaselineDecoder(keras.layers.Layer):
    """Predicts every dimension of frame t independently given the context of frames < t (Eq. 2).

    Resolution preserving like the VPN's decoder, with the same block kind and count, but without masks and without
    frame t as an input, so p(x_t | x_<t) factorises over pixels and colours.

    Args:
        hidden, num_blocks, block, channels, num_classes, top_channels, condition_dim: as in `PixelCNNDecoder`.

    Call arguments:
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
        self.condition_dim = condition_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, context_shape, condition_shape=None):
        width = 2 * self.hidden
        hidden_shape = tuple(context_shape[:-1]) + (width,)
        self.context_input = keras.layers.Conv2D(
            width, 1, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="context_input"
        )
        self.context_input.build(context_shape)
        self.blocks = []
        for i in range(self.num_blocks):
            b = residual_block(
                self.block,
                hidden=self.hidden,
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
            masked=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="head",
        )
        self.head.build(hidden_shape)

    def call(self, context, condition=None):
        h = self.context_input(context)
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
                "condition_dim": self.condition_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
