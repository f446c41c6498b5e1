"""The plain 2D convolution every VPN layer is built from: Keras' `Conv2D`, lowered to the ops our CPUs run fastest."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="vpn_tf")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` (same arguments, weights and function) for channels_last, ungrouped convolutions.

    Two lowering choices, both measured by `bench/train_step.py`:
    - Dilated kernels go straight to `tf.nn.conv2d(..., dilations=d)` (oneDNN and the default CPU kernels handle
      dilation natively). Keras calls `tf.nn.convolution`, which rewrites a dilated convolution as
      SpaceToBatch -> convolution over d^2 tiny images -> BatchToSpace: two extra copies of the tensor, forward and
      backward, and a convolution over 8x8 tiles at d = 8.
    - The bias is added with `tf.nn.bias_add`, the pattern TF's graph optimizer fuses into the convolution kernel
      (`_FusedConv2D`); Keras' broadcast add is a separate pass over the output.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        if (kwargs.get("data_format") or "channels_last") != "channels_last":
            raise ValueError(f"{type(self).__name__} supports only data_format='channels_last'.")
        if kwargs.get("groups", 1) != 1:
            raise ValueError(f"{type(self).__name__} does not support grouped convolution (groups != 1).")
        super().__init__(filters, kernel_size, **kwargs)

    def convolution_op(self, inputs, kernel):
        return tf.nn.conv2d(
            inputs,
            tf.cast(kernel, inputs.dtype),
            strides=self.strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
