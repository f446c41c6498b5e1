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
