"""The baseline's decoder (§2.1, §3.3 of the VPN paper): an unmasked CNN that never sees frame t."""

from __future__ import annotations

import keras

from vpn_tf.layers.convolution import Conv2D
from vpn_tf.models.decoder_base import DecoderBase


@keras.saving.register_keras_serializable(package="vpn_tf")
class BaselineDecoder(DecoderBase):
    """Predicts every dimension of frame t independently given the context of frames < t (Eq. 2).

    Resolution preserving like the VPN's decoder, with the same block kind and count, but without masks and without
    frame t as an input, so p(x_t | x_<t) factorises over pixels and colours. Arguments as in `DecoderBase`.

    Call arguments:
        context: `[batch, height, width, lstm_channels]`.
        condition: `[batch, condition_dim]` when condition_dim > 0.

    Returns:
        float32 logits `[batch, height, width, channels, num_classes]`.
    """

    masked = False

    def build(self, context_shape, condition_shape=None):
        self.context_input = Conv2D(
            2 * self.hidden,
            1,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="context_input",
        )
        self.context_input.build(context_shape)
        self.build_blocks_and_head(tuple(context_shape[:-1]) + (2 * self.hidden,))

    def call(self, context, condition=None):
        return self.blocks_and_head(self.context_input(context), condition)
