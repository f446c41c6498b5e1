"""Chooses the residual block kind a config asks for."""

from __future__ import annotations

from vpn_tf.layers.relu_residual_block import ReLUResidualBlock
from vpn_tf.layers.residual_multiplicative_block import ResidualMultiplicativeBlock

BLOCKS = {"rmb": ResidualMultiplicativeBlock, "relu": ReLUResidualBlock}


def residual_block(kind: str, **kwargs):
    """A residual block of `kind` ("rmb" or "relu") built with `kwargs` (see `ResidualBlockBase`)."""
    if kind not in BLOCKS:
        raise ValueError(f"block must be one of {tuple(BLOCKS)}. Received: block={kind!r}")
    return BLOCKS[kind](**kwargs)


def build_blocks(owner, hidden_shape, dilations, masked: bool = False, color_groups: int = 1) -> list:
    """Builds one residual block per dilation rate for `owner` (an encoder or decoder layer with `block`, `hidden`,
    `condition_dim`, `kernel_initializer` attributes), named block_0, block_1, ..."""
    blocks = []
    for i, rate in enumerate(dilations):
        b = residual_block(
            owner.block,
            hidden=owner.hidden,
            dilation_rate=rate,
            masked=masked,
            color_groups=color_groups,
            condition_dim=owner.condition_dim,
            kernel_initializer=owner.kernel_initializer,
            dtype=owner.dtype_policy,
            name=f"block_{i}",
        )
        b.build(hidden_shape)
        blocks.append(b)
    return blocks
