"""PixelCNN decoder conditioned on the temporal context (§3.2 of the VPN paper)."""

from __future__ import annotations

import keras
from keras import ops

from vpn_tf.config import CONTEXT_WIRINGS
from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.layers.stepping import WHOLE_FRAME
from vpn_tf.models.decoder_base import DecoderBase


@keras.saving.register_keras_serializable(package="vpn_tf")
class PixelCNNDecoder(DecoderBase):
    """Predicts p(x_{t,i,j,c} | x_<) for every dimension of frame t at once (teacher forcing).

    Guarantee: the logits of dimension (i, j, c) depend on frame t only through pixels before (i, j) in raster
    order and colours before c at (i, j); the context (ConvLSTM state after frames < t) is unmasked. Frame t enters
    only through a type-A masked convolution, so no layer ever holds the raw current value in the channel group that
    predicts it, and the multiplicative units' identity term g2 * h cannot pass it through. Every later convolution is
    type B with group-aligned channels (channel k -> colour k mod channels).

    How the context enters (the paper does not say; `context_wiring`):
    - "every_block" (default): an unmasked `context_kernel_size` convolution of the context to 2c features, then a
      1x1 convolution to a map per block and one for the head (num_blocks + 1 slices of 2c channels); each is added
      to its block's branch input (like the action conditioning) and the last to the head's input. The logits of
      (i, j) then read the context at and around (i, j), right and below included, in every layer, as in
      conditional PixelCNN.
    - "every_layer": "every_block", and a third 1x1 convolution of the 2c context features to `top_channels`,
      added to the head's topmost layer (after its masked 1x1 convolution). Masked layers give colour c only the
      channels of its group (a third of them for RGB), so under "every_block" the red logits see the context
      through ~2c/3 channels of the residual stream; this map gives every colour's logits the context at the
      topmost layer's full per-group width, the path the baseline's unmasked head has (RESULTS.md: the VPN's red
      values were the ones worse than the baseline's).

    Args:
        first_kernel_size: kernel of the type-A input layer.
        context_wiring: "every_block" or "every_layer" (above; `VPNConfig.context_wiring`).
        context_kernel_size: kernel of the "every_block" projection.
        **kwargs: as in `DecoderBase` (num_blocks masked blocks, no dilation, as in the paper).

    Call arguments:
        frame: `[batch, height, width, channels]`, frame t scaled to [-1, 1].
        context: `[batch, height, width, lstm_channels]`.
        condition: `[batch, condition_dim]` when condition_dim > 0.

    Returns:
        float32 logits `[batch, height, width, channels, num_classes]`.
    """

    masked = True

    def __init__(
        self, hidden, num_blocks, first_kernel_size=7, context_wiring="every_block", context_kernel_size=3, **kwargs
    ):
        super().__init__(hidden, num_blocks, **kwargs)
        if context_wiring not in CONTEXT_WIRINGS:
            raise ValueError(f"context_wiring must be one of {CONTEXT_WIRINGS}. Received: {context_wiring!r}")
        self.first_kernel_size = first_kernel_size
        self.context_wiring = context_wiring
        self.context_kernel_size = context_kernel_size

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
        context_shape = tuple(frame_shape[:-1]) + (int(context_shape[-1]),)
        # Factorised: one k x k convolution to 2c features, then one 1x1 to every block's map. A single k x k
        # convolution to (blocks + 1) * 2c channels would cost ~k^2 (blocks + 1) / 2 times more: +50% of the
        # decoder's arithmetic at the paper's widths, against ~+10% for this.
        self.context_features = Conv2D(
            width,
            self.context_kernel_size,
            padding="same",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="context_features",
        )
        self.context_features.build(context_shape)
        self.context_blocks = Conv2D(
            (self.num_blocks + 1) * width,
            1,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="context_blocks",
        )
        self.context_blocks.build(tuple(frame_shape[:-1]) + (width,))
        if self.context_wiring == "every_layer":
            self.context_top = Conv2D(
                self.top_channels,
                1,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="context_top",
            )
            self.context_top.build(tuple(frame_shape[:-1]) + (width,))
        self.build_blocks_and_head(tuple(frame_shape[:-1]) + (width,))

    def context_maps(self, context):
        """The "every_block" / "every_layer" projections: a list of num_blocks + 1 maps `[batch, height, width, 2c]`
        and the topmost layer's map `[batch, height, width, top_channels]` (None for "every_block")."""
        features = self.context_features(context)
        maps = ops.split(self.context_blocks(features), self.num_blocks + 1, axis=-1)
        return maps, (self.context_top(features) if self.context_wiring == "every_layer" else None)

    def call(self, frame, context, condition=None):
        return self.forward(frame, context, condition, WHOLE_FRAME)

    def forward(self, frame, context, condition=None, stepper=WHOLE_FRAME):
        """The decoder's math for any stepper (`vpn_tf.layers.stepping`): whole frames (teacher forcing, `call`)
        or one pixel at a time (`vpn_tf.sampling.cached`). The context's projections depend on past frames only:
        `stepper.frame_map` computes them once per frame."""
        h = stepper.conv(self.frame_input, frame)
        maps, top = stepper.frame_map(lambda: self.context_maps(context))
        return self.blocks_and_head(h, condition, maps, top, stepper)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "first_kernel_size": self.first_kernel_size,
                "context_wiring": self.context_wiring,
                "context_kernel_size": self.context_kernel_size,
            }
        )
        return config
