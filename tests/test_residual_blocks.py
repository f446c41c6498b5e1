import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from vpn_tf.layers import ReLUResidualBlock, ResidualMultiplicativeBlock, VectorConditioning, channel_groups


def test_rmb_matches_equation_4():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 5, 5, 8)).astype("float32")
    block = ResidualMultiplicativeBlock(hidden=4, dilation_rate=2)
    out = block(h).numpy()
    h1 = block.reduce(h)
    h2 = block.mu1(h1)
    h3 = block.mu2(h2)
    h4 = block.expand(h3)
    np.testing.assert_allclose(out, h + h4.numpy(), rtol=1e-6, atol=1e-6)
    # The 1x1 reduction has no activation: it is exactly a matrix product plus bias.
    ref = np.einsum("bhwc,cd->bhwd", h, block.reduce.kernel.numpy()[0, 0]) + block.reduce.bias.numpy()
    np.testing.assert_allclose(h1.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert block.mu1.dilation_rate == 2 and block.mu2.dilation_rate == 2


def test_relu_block_matches_bottleneck_formula():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(1, 4, 4, 6)).astype("float32")
    block = ReLUResidualBlock(hidden=3)
    out = block(h).numpy()
    relu = tf.nn.relu
    ref = h + block.expand(relu(block.spatial(relu(block.reduce(relu(h))))))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls, n_weights", [(ResidualMultiplicativeBlock, 8), (ReLUResidualBlock, 6)])
def test_layer_harness(cls, n_weights):
    run_layer_test(
        cls,
        dict(hidden=4, dilation_rate=2),
        input_shape=(2, 6, 6, 8),
        expected_output_shape=(2, 6, 6, 8),
        expected_num_trainable_weights=n_weights,
    )
    # Masked and conditioned: +2 weights for the conditioning projection.
    run_layer_test(
        cls,
        dict(hidden=5, masked=True, color_groups=3, condition_dim=4),
        input_shape=(2, 6, 6, 10),
        expected_output_shape=(2, 6, 6, 10),
        expected_num_trainable_weights=n_weights + 2,
        call_kwargs_fn=lambda b: {"condition": np.random.default_rng(0).normal(size=(b, 4)).astype("float32")},
    )


def test_conditioning_is_a_broadcast_1x1_convolution():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(2, 5)).astype("float32")
    layer = VectorConditioning(6)
    out = layer(v).numpy()
    assert out.shape == (2, 1, 1, 6)
    tiled = np.broadcast_to(v[:, None, None, :], (2, 3, 3, 5))
    k = layer.dense.kernel.numpy()[None, None]
    ref = tf.nn.conv2d(tiled, k, 1, "SAME").numpy() + layer.dense.bias.numpy()
    np.testing.assert_allclose(np.broadcast_to(out, ref.shape), ref, rtol=1e-5, atol=1e-6)


def test_conditioned_block_requires_condition_and_depends_on_it():
    block = ResidualMultiplicativeBlock(hidden=2, condition_dim=3)
    h = np.zeros((1, 3, 3, 4), "float32")
    with pytest.raises(ValueError, match="condition"):
        block(h)
    a = block(h, condition=np.zeros((1, 3), "float32")).numpy()
    b = block(h, condition=np.ones((1, 3), "float32")).numpy()
    assert np.abs(a - b).max() > 0


@pytest.mark.parametrize("cls", [ResidualMultiplicativeBlock, ReLUResidualBlock])
def test_masked_block_is_causal(cls):
    rng = np.random.default_rng(4)
    ch = 10
    block = cls(hidden=5, masked=True, color_groups=3)
    h = rng.normal(size=(1, 4, 4, ch)).astype("float32")
    y = block(h).numpy()
    g = channel_groups(ch, 3)
    for i, j in [(0, 0), (2, 1), (3, 3)]:
        for k in range(ch):
            h2 = h.copy()
            h2[0, i, j, k] += 2.0
            diff = np.abs(block(h2).numpy() - y)[0]
            assert diff.reshape(16, ch)[: i * 4 + j].max(initial=0.0) == 0.0
            assert diff[i, j, g < g[k]].max(initial=0.0) == 0.0
