"""What the two residual block kinds share: masking, conditioning, the residual connection, serialization."""

from __future__ import annotations

import keras

from vpn_tf.layers.conditioning import VectorConditioning
from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.layers.stepping import WHOLE_FRAME


class ResidualBlockBase(keras.layers.Layer):
    """out = h + branch(h + V cond): a resolution-preserving residual block, optionally masked and conditioned.

    Subclasses define `build_branch(channels)` and `branch(h, stepper)`, evaluating every convolution through
    `stepper.conv` and every sub-layer through `stepper.apply`, so that cached sampling runs the same math. When
    `masked`, every convolution of the branch must be made with `self.conv(..., masked)`, which gives a type-B
    `MaskedConv2D` with the block's colour groups: channel k of every layer belongs to group k mod `color_groups`,
    so the branch and the residual stay group-aligned and the block is causal whenever its input is. The
    conditioning bias depends only on the per-frame vector, so adding it to every channel cannot break causality.

    Args:
        hidden: c, the channels inside the block (inputs and outputs keep their own width, 2c in the paper).
        dilation_rate: dilation of the block's 3x3 convolutions.
        masked: masked type-B convolutions everywhere (PixelCNN decoders).
        color_groups: colour groups of the masks (1 or 3).
        condition_dim: size of the conditioning vector; 0 for none.
        kernel_initializer: initializer of every kernel.

    Call arguments:
        inputs: `[batch, height, width, channels]`.
        condition: `[batch, condition_dim]`, required iff condition_dim > 0.
        context: optional `[batch, height, width, channels]` map added to the branch's input like the conditioning
            (the decoder's per-block projection of the temporal context; it must not depend on the current frame).
    """

    def __init__(
        self,
        hidden,
        dilation_rate=1,
        masked=False,
        color_groups=1,
        condition_dim=0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1. Received: hidden={hidden}")
        if dilation_rate < 1:
            raise ValueError(f"dilation_rate must be >= 1. Received: dilation_rate={dilation_rate}")
        self.hidden = hidden
        self.dilation_rate = dilation_rate
        self.masked = masked
        self.color_groups = color_groups
        self.condition_dim = condition_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def conv(self, filters, kernel_size, name, dilation_rate=1):
        common = dict(
            padding="same",
            dilation_rate=dilation_rate,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        if self.masked:
            return MaskedConv2D(filters, kernel_size, mask_type="B", color_groups=self.color_groups, **common)
        return Conv2D(filters, kernel_size, **common)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if self.condition_dim:
            self.conditioning = VectorConditioning(
                channels, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="conditioning"
            )
            self.conditioning.build((input_shape[0], self.condition_dim))
        self.build_branch(input_shape)

    def build_branch(self, input_shape):
        raise NotImplementedError

    def branch(self, h, stepper=WHOLE_FRAME):
        """The residual branch's math, its convolutions evaluated by `stepper` (`vpn_tf.layers.stepping`)."""
        raise NotImplementedError

    def call(self, inputs, condition=None, context=None):
        return self.forward(inputs, condition, context, WHOLE_FRAME)

    def forward(self, inputs, condition=None, context=None, stepper=WHOLE_FRAME):
        """The block's math for any stepper: whole frames (`call`) or one pixel (cached sampling)."""
        h = inputs
        if self.condition_dim:
            if condition is None:
                raise ValueError(f"{self.name} was built with condition_dim={self.condition_dim}; pass `condition`.")
            h = h + stepper.frame_map(lambda: self.conditioning(condition))
        if context is not None:
            h = h + context
        return inputs + self.branch(h, stepper)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden": self.hidden,
                "dilation_rate": self.dilation_rate,
                "masked": self.masked,
                "color_groups": self.color_groups,
                "condition_dim": self.condition_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
