"""What the VPN's PixelCNN decoder and the baseline's decoder share: arguments, blocks, output head, config."""

from __future__ import annotations

import keras

from vpn_tf.layers.stepping import WHOLE_FRAME
from vpn_tf.models.blocks import build_blocks, run_blocks
from vpn_tf.models.output_head import OutputHead


class DecoderBase(keras.layers.Layer):
    """Resolution-preserving decoder: `num_blocks` residual blocks (no dilation) and an `OutputHead`.

    Args:
        hidden: c (blocks have 2c inputs and outputs).
        num_blocks: l, residual blocks.
        block: "rmb" or "relu".
        channels: colour channels of the frames (1 or 3).
        num_classes: logits per dimension (1 or 256).
        top_channels: width of the topmost layer.
        condition_dim: per-frame conditioning vector size (0: none), added in every block.
        remat: recompute each block's activations in the backward pass (`run_blocks`).
    """

    masked = False

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
        remat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remat = remat
        self.hidden = hidden
        self.num_blocks = num_blocks
        self.block = block
        self.channels = channels
        self.num_classes = num_classes
        self.top_channels = top_channels
        self.condition_dim = condition_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_blocks_and_head(self, hidden_shape):
        groups = self.channels if self.masked else 1
        self.blocks = build_blocks(self, hidden_shape, [1] * self.num_blocks, masked=self.masked, color_groups=groups)
        self.head = OutputHead(
            self.top_channels,
            self.channels,
            self.num_classes,
            masked=self.masked,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="head",
        )
        self.head.build(hidden_shape)

    def blocks_and_head(self, h, condition, contexts=None, top_context=None, stepper=WHOLE_FRAME):
        """The blocks, then the head. `contexts`: optional maps added to each block's branch input and (the last
        one) to the head's input; `top_context`: optional map added to the head's topmost layer. `stepper`: how the
        convolutions are evaluated (`vpn_tf.layers.stepping`)."""
        if contexts is None:
            h = run_blocks(self.blocks, h, condition, self.remat, stepper=stepper)
            return stepper.apply(self.head, h, top_context)
        h = run_blocks(self.blocks, h, condition, self.remat, contexts[:-1], stepper)
        return stepper.apply(self.head, h + contexts[-1], top_context)

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
                "remat": self.remat,
            }
        )
        return config
