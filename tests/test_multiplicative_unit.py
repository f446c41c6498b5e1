import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from vpn_tf.layers import MultiplicativeUnit, channel_groups


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_matches_equation_3_with_separate_convolutions():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    mu = MultiplicativeUnit(dilation_rate=2, bias_initializer="random_normal")
    out = mu(h).numpy()
    kernel, bias = mu.gates.kernel.numpy(), mu.gates.bias.numpy()

    def conv(i):  # W_i * h with the i-th slice of the fused kernel, as its own convolution.
        k = kernel[..., i * 4 : (i + 1) * 4]
        return tf.nn.conv2d(h, k, 1, "SAME", dilations=2).numpy() + bias[i * 4 : (i + 1) * 4]

    g1, g2, g3, u = _sigmoid(conv(0)), _sigmoid(conv(1)), _sigmoid(conv(2)), np.tanh(conv(3))
    np.testing.assert_allclose(out, g1 * np.tanh(g2 * h + g3 * u), rtol=1e-5, atol=1e-5)


def test_layer_harness_unmasked_and_masked():
    for kwargs in (dict(dilation_rate=2), dict(masked=True, color_groups=3)):
        run_layer_test(
            MultiplicativeUnit,
            kwargs,
            input_shape=(2, 6, 6, 5),
            expected_output_shape=(2, 6, 6, 5),
            expected_num_trainable_weights=2,
        )


@pytest.mark.parametrize("groups", [1, 3])
def test_masked_unit_is_causal_given_group_aligned_input(groups):
    # Perturbing channel k of h at pixel p may only change MU outputs at p of groups >= group(k), and later pixels.
    rng = np.random.default_rng(2)
    c = 5
    mu = MultiplicativeUnit(masked=True, color_groups=groups, bias_initializer="random_normal")
    h = rng.normal(size=(1, 4, 4, c)).astype("float32")
    y = mu(h).numpy()
    g = channel_groups(c, groups)
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        for k in range(c):
            h2 = h.copy()
            h2[0, i, j, k] += 2.0
            diff = np.abs(mu(h2).numpy() - y)[0]
            assert diff.reshape(16, c)[: i * 4 + j].max(initial=0.0) == 0.0
            assert diff[i, j, g < g[k]].max(initial=0.0) == 0.0
            assert diff[i, j, k] > 0.0  # the identity term g2 * h: the same channel does change (type B)
