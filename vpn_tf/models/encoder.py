"""Resolution-preserving CNN encoder (§3.1 of the VPN paper)."""

from __future__ import annotations

import keras

from vpn_tf.layers.convolution import Conv2D
from vpn_tf.models.blocks import build_blocks, run_blocks


@keras.saving.register_keras_serializable(package="vpn_tf")
class ResolutionPreservingEncoder(keras.layers.Layer):
    """Encodes one frame into a 2c-channel map of the same height and width.

    A 3x3 convolution lifts the frame to 2c channels, then `len(dilations)` residual blocks (RMB or ReLU) with the
    given per-block dilation rates (the paper: [1, 2, 4, 8] twice). There is no masking: the encoder only ever sees
    frames before the one being predicted. The VPN applies it to all frames at once (time folded into the batch), so
    its weights are shared across time.

    Args:
        hidden: c (blocks have 2c inputs and outputs).
        dilations: one dilation rate per block.
        block: "rmb" or "relu".
        condition_dim: size of the per-frame conditioning vector added in every block (0: none).
        remat: recompute each block's activations in the backward pass (`run_blocks`).

    Call arguments:
        inputs: `[batch, height, width, channels]` frames scaled to [-1, 1].
        condition: `[batch, condition_dim]` when condition_dim > 0.

    Returns:
        `[batch, height, width, 2 * hidden]`.
    """

    def __init__(
        self,
        hidden,
        dilations,
        block="rmb",
        condition_dim=0,
        kernel_initializer="glorot_uniform",
        remat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remat = remat
        self.hidden = hidden
        self.dilations = tuple(int(d) for d in dilations)
        self.block = block
        self.condition_dim = condition_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        width = 2 * self.hidden
        self.stem = Conv2D(
            width,
            3,
            padding="same",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="stem",
        )
        self.stem.build(input_shape)
        self.blocks = build_blocks(self, tuple(input_shape[:-1]) + (width,), self.dilations)

    def call(self, inputs, condition=None):
        return run_blocks(self.blocks, self.stem(inputs), condition, self.remat)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2 * self.hidden,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden": self.hidden,
                "dilations": list(self.dilations),
                "block": self.block,
                "condition_dim": self.condition_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "remat": self.remat,
            }
        )
        return config
