"""Chooses the residual block kind a config asks for."""

from __future__ import annotations

import tensorflow as tf

from vpn_tf.layers.relu_residual_block import ReLUResidualBlock
from vpn_tf.layers.residual_multiplicative_block import ResidualMultiplicativeBlock
from vpn_tf.layers.stepping import WHOLE_FRAME

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


def run_blocks(blocks, h, condition=None, remat: bool = False, contexts=None, stepper=WHOLE_FRAME):
    """Applies residual `blocks` in turn (`contexts`: optional per-block maps added to each block's branch input).

    With `remat`, each block's internal activations are not kept for the backward pass but recomputed from the
    block's inputs there (`tf.recompute_grad`): same values and gradients, the memory of one block's input instead of
    its ~10 intermediate tensors, one more forward pass of the blocks. `stepper`: how the blocks' convolutions are
    evaluated (`vpn_tf.layers.stepping`)."""
    contexts = contexts if contexts is not None else [None] * len(blocks)
    for b, ctx in zip(blocks, contexts, strict=True):
        if not remat or stepper.pixelwise:  # one pixel at a time has no backward pass to save memory for
            h = stepper.apply(b, h, condition=condition, context=ctx)
            continue
        # tf.recompute_grad takes tensors only: bind the absent ones in the closure.
        args = [t for t in (condition, ctx) if t is not None]

        def fn(x, *rest, b=b, has_cond=condition is not None, has_ctx=ctx is not None):
            rest = list(rest)
            cond = rest.pop(0) if has_cond else None
            c = rest.pop(0) if has_ctx else None
            return b(x, condition=cond, context=c)

        h = tf.recompute_grad(fn)(h, *args)
    return h
