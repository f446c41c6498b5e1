"""Masked 2D convolution for PixelCNN decoders (raster order over pixels, R -> G -> B within a pixel).

Reference: van den Oord et al., "Pixel Recurrent Neural Networks", ICML 2016, §3.4 (masks A and B).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from vpn_tf.layers.convolution import Conv2D

MASK_TYPES = ("A", "B")


def channel_groups(num_channels: int, groups: int, splits: int = 1) -> np.ndarray:
    """Colour group of every channel: channel k of each of `splits` equal chunks belongs to group k mod `groups`.

    With groups=3 the raw RGB input (3 channels) gets R=0, G=1, B=2, and hidden layers of any width (c=128 need not
    divide by 3) interleave the groups. `splits` > 1 describes a fused convolution whose output is `splits` stacked
    tensors of the same layout (e.g. the multiplicative unit's four gates computed by one convolution).
    """
    if num_channels % splits:
        raise ValueError(f"num_channels={num_channels} is not divisible by splits={splits}")
    return np.arange(num_channels) % (num_channels // splits) % groups


def causal_mask(
    kernel_size: tuple[int, int],
    in_channels: int,
    out_channels: int,
    mask_type: str,
    groups: int = 1,
    output_splits: int = 1,
) -> np.ndarray:
    """The {0, 1} kernel mask of shape [kh, kw, in_channels, out_channels].

    Positions above the centre row, and left of the centre in the centre row, see every input channel. At the centre,
    an output channel of group g sees input channels of group < g (type A) or <= g (type B). Positions after the
    centre in raster order see nothing. With groups=1, type A excludes the centre entirely and type B includes it.
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}. Received: mask_type={mask_type!r}")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"Masked convolutions need odd kernel sizes so the centre is defined. Received: {kernel_size}")
    ch, cw = kh // 2, kw // 2
    mask = np.zeros((kh, kw, in_channels, out_channels), dtype=np.float32)
    mask[:ch] = 1.0
    mask[ch, :cw] = 1.0
    g_in = channel_groups(in_channels, groups)[:, None]
    g_out = channel_groups(out_channels, groups, output_splits)[None, :]
    mask[ch, cw] = (g_in < g_out) if mask_type == "A" else (g_in <= g_out)
    return mask


@keras.saving.register_keras_serializable(package="vpn_tf")
class MaskedConv2D(Conv2D):
    """A `Conv2D` whose kernel is multiplied by a constant causal mask in every call.

    Guarantee: output channel k at pixel (i, j) depends only on inputs at pixels before (i, j) in raster order and,
    at (i, j) itself, on input channels of earlier colour groups (type A) or of earlier-or-equal groups (type B).
    The stored kernel is never modified, so the optimizer sees gradients only through the unmasked entries and
    checkpoints hold the full kernel (its masked entries are inert).

    Args:
        filters: output channels.
        kernel_size: odd int or pair of odd ints.
        mask_type: "A" (centre excluded / earlier groups only) or "B" (centre included / same group too).
        color_groups: 1 (grey) or 3 (R, G, B); channel k belongs to group k mod color_groups.
        output_splits: the output is this many stacked tensors, each with the channel -> group layout above.
        **kwargs: any other `keras.layers.Conv2D` argument (dilation_rate, use_bias, initializers, ...).
            `padding` must be "same" and `strides` 1 (resolution preserving and centred).

    Call arguments:
        inputs: `[batch, height, width, in_channels]`.

    Returns:
        `[batch, height, width, filters]`.
    """

    def __init__(self, filters, kernel_size, mask_type="B", color_groups=1, output_splits=1, **kwargs):
        kwargs.setdefault("padding", "same")
        if kwargs["padding"] != "same":
            raise ValueError(f"MaskedConv2D needs padding='same'. Received: padding={kwargs['padding']!r}")
        if kwargs.get("strides", 1) not in (1, (1, 1), [1, 1]):
            raise ValueError(f"MaskedConv2D needs strides=1. Received: strides={kwargs['strides']!r}")
        super().__init__(filters, kernel_size, **kwargs)
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}. Received: mask_type={mask_type!r}")
        if color_groups < 1:
            raise ValueError(f"color_groups must be >= 1. Received: color_groups={color_groups}")
        if filters % output_splits:
            raise ValueError(f"filters={filters} is not divisible by output_splits={output_splits}")
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"MaskedConv2D needs odd kernel sizes. Received: kernel_size={self.kernel_size}")
        self.mask_type = mask_type
        self.color_groups = color_groups
        self.output_splits = output_splits

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = causal_mask(
            self.kernel_size, int(input_shape[-1]), self.filters, self.mask_type, self.color_groups, self.output_splits
        )

    def convolution_op(self, inputs, kernel):
        mask = ops.convert_to_tensor(self.mask, dtype=kernel.dtype)
        return super().convolution_op(inputs, kernel * mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"mask_type": self.mask_type, "color_groups": self.color_groups, "output_splits": self.output_splits}
        )
        return config
