"""The decoders' top: ReLU, 1x1 conv to the topmost layer, ReLU, 1x1 conv to the logits."""

from __future__ import annotations

import keras
from keras import ops

from vpn_tf.layers.convolution import Conv2D
from vpn_tf.layers.masked_conv import MaskedConv2D
from vpn_tf.layers.stepping import WHOLE_FRAME


@keras.saving.register_keras_serializable(package="vpn_tf")
class OutputHead(keras.layers.Layer):
    """Maps decoder features to per-dimension logits `[batch, height, width, channels, num_classes]`.

    When `masked`, both 1x1 convolutions are type-B masked with `channels` colour groups, and the logit convolution's
    output channel j = k * channels + c belongs to group c = j mod channels, so the logits of colour c see only
    features of groups <= c at the same pixel. Under mixed precision the logit convolution itself computes in
    float32 (its input cast up), as Keras' mixed-precision guide keeps the last layer: the 256-way softmax and the
    validation metric that drives the learning-rate plateau see full-precision logits, not bfloat16's 8-bit
    mantissa.

    Args:
        top_channels: width of the topmost layer (768 Moving MNIST, 1536 pushing in the paper).
        channels: colour channels of the frames (1 or 3).
        num_classes: K, logits per dimension (1 sigmoid, 256 softmax).
        masked: PixelCNN (True) or baseline (False) decoder.
    """

    def __init__(self, top_channels, channels, num_classes, masked, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.top_channels = top_channels
        self.channels = channels
        self.num_classes = num_classes
        self.masked = masked
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _conv(self, filters, name, dtype=None):
        common = dict(kernel_initializer=self.kernel_initializer, dtype=dtype or self.dtype_policy, name=name)
        if self.masked:
            return MaskedConv2D(filters, 1, mask_type="B", color_groups=self.channels, **common)
        return Conv2D(filters, 1, **common)

    def build(self, input_shape):
        self.top = self._conv(self.top_channels, "top")
        self.top.build(input_shape)
        self.logits = self._conv(self.num_classes * self.channels, "logits", dtype="float32")
        self.logits.build(tuple(input_shape[:-1]) + (self.top_channels,))

    def call(self, inputs, top_context=None):
        return self.forward(inputs, top_context, WHOLE_FRAME)

    def forward(self, inputs, top_context=None, stepper=WHOLE_FRAME):
        """The head's math for any stepper: `[..., top input]` -> float32 logits `[..., channels, num_classes]`
        (whole frames: `[B, H, W, C, K]`; one pixel: `[B, C, K]`)."""
        top = stepper.conv(self.top, ops.relu(inputs))
        if top_context is not None:  # unmasked: a function of past frames only
            top = top + top_context
        h = stepper.conv(self.logits, ops.cast(ops.relu(top), "float32"))
        # Logit channel j = k * channels + c belongs to colour c: [..., K * C] -> [..., K, C] -> [..., C, K].
        lead = tuple(ops.shape(h)[:-1])
        if self.channels == 1:
            return ops.reshape(h, lead + (1, self.num_classes))
        return ops.swapaxes(ops.reshape(h, lead + (self.num_classes, self.channels)), -1, -2)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels, self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "top_channels": self.top_channels,
                "channels": self.channels,
                "num_classes": self.num_classes,
                "masked": self.masked,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
