"""Per-frame vector conditioning (actions and states, §6.1 of the VPN paper)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vpn_tf")
class VectorConditioning(keras.layers.Layer):
    """Maps a per-frame vector to a feature map bias: a 1x1 convolution of the vector broadcast over H x W.

    A 1x1 convolution applied to a spatially constant input equals a dense layer applied once and broadcast, which
    is what this computes (H*W times less arithmetic than broadcasting first).

    Args:
        filters: channels of the feature map the result is added to.

    Call arguments:
        inputs: `[batch, dim]` conditioning vectors.

    Returns:
        `[batch, 1, 1, filters]`, ready to broadcast-add onto `[batch, height, width, filters]`.
    """

    def __init__(self, filters, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.dense = keras.layers.Dense(
            self.filters, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="projection"
        )
        self.dense.build(input_shape)

    def call(self, inputs):
        return ops.expand_dims(ops.expand_dims(self.dense(inputs), 1), 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
        )
        return config
