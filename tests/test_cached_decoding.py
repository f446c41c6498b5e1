"""The cached decoder runs the decoder's own math: a block whose math changes is sampled with the changed math."""

import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from tests.test_sampling import FRAMES, _frame, _probabilities, _setup
from vpn_tf.layers.relu_residual_block import ReLUResidualBlock
from vpn_tf.layers.residual_multiplicative_block import ResidualMultiplicativeBlock
from vpn_tf.layers.stepping import WHOLE_FRAME
from vpn_tf.models import blocks
from vpn_tf.sampling import CachedDecoder, Sampler, frame_conditions


class _SquashedRMB(ResidualMultiplicativeBlock):
    """Another block math: the branch squashed and doubled, plus a second pass of its first unit."""

    def branch(self, h, stepper=WHOLE_FRAME):
        out = super().branch(h, stepper)
        return 2.0 * tf.tanh(out) + stepper.apply(self.mu1, stepper.conv(self.reduce, h))[..., :1]


class _LeakyReLUBlock(ReLUResidualBlock):
    def branch(self, h, stepper=WHOLE_FRAME):
        h = stepper.conv(self.reduce, tf.nn.leaky_relu(h, 0.3))
        h = stepper.conv(self.spatial, tf.nn.leaky_relu(h, 0.3))
        return stepper.conv(self.expand, tf.nn.leaky_relu(h, 0.3))


def _drawn_and_teacher(cfg, model, ctx, kw, loop, jit):
    sampler = Sampler(model, "cached", groups=1)
    generate = tf.function(CachedDecoder(model, loop=loop).generate_frame, jit_compile=jit, reduce_retracing=True)
    conds = frame_conditions(cfg, kw.get("actions"), kw.get("states"), cfg.context_frames + 1, 2)
    h, _ = sampler.temporal.run(tf.constant(ctx), None if conds is None else conds[:, : cfg.context_frames])
    cond_t = None if conds is None else conds[:, cfg.context_frames]
    frame, logits = generate(h, cond_t, tf.constant([5, 6], tf.int64), tf.constant(1.0), return_logits=True)
    video = np.concatenate([ctx, frame.numpy()[:, None]], axis=1)
    vectors = {k: v[:, : cfg.context_frames + 1] if k == "actions" else v for k, v in kw.items()}
    teacher = model.conditional_logits(video, **vectors).numpy()[:, 0]
    return logits.numpy(), teacher, video


@FRAMES
@pytest.mark.parametrize("kind, cls, preset", [("rmb", _SquashedRMB, "tiny_rgb"), ("relu", _LeakyReLUBlock, "tiny")])
@pytest.mark.parametrize("loop, jit", [("row", False), ("pixel", True)])
def test_a_changed_block_is_sampled_with_its_changed_math(monkeypatch, kind, cls, preset, loop, jit, frame):
    cfg, plain, ctx, kw = _setup(preset, block=kind, **_frame(frame))
    monkeypatch.setitem(blocks.BLOCKS, kind, cls)
    _, changed, _, _ = _setup(preset, block=kind, **_frame(frame))
    changed.set_weights(plain.get_weights())  # the same weights: only the block's math differs
    assert isinstance(changed.decoder.blocks[0], cls)
    drawn, teacher, video = _drawn_and_teacher(cfg, changed, ctx, kw, loop, jit)
    np.testing.assert_allclose(_probabilities(cfg, drawn), _probabilities(cfg, teacher), atol=1e-5)
    # The change matters: the unchanged model, with the same weights, assigns other conditionals to the same video.
    vectors = {k: v[:, : cfg.context_frames + 1] if k == "actions" else v for k, v in kw.items()}
    plain_teacher = plain.conditional_logits(video, **vectors).numpy()[:, 0]
    assert np.abs(plain_teacher - teacher).max() > 0.05


def test_cached_decoder_refuses_dilated_decoder_kernels(monkeypatch):
    cfg, model, ctx, _ = _setup("tiny")
    model.decoder.blocks[0].mu1.gates.dilation_rate = (2, 2)
    with pytest.raises(ValueError, match="square undilated decoder kernels"):
        Sampler(model, jit=False).sample(ctx, 1)
    assert vpn_tf.sampling.LOOPS == ("pixel", "row")
