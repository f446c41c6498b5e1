import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from vpn_tf.layers import MaskedConv2D, causal_mask, channel_groups


def test_channel_groups_interleave_and_splits():
    np.testing.assert_array_equal(channel_groups(3, 3), [0, 1, 2])
    np.testing.assert_array_equal(channel_groups(5, 3), [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(channel_groups(10, 3, splits=2), [0, 1, 2, 0, 1, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(channel_groups(4, 1), [0, 0, 0, 0])


@pytest.mark.parametrize(
    "mask_type, centre",
    [("A", 0.0), ("B", 1.0)],
)
def test_single_group_masks_by_hand(mask_type, centre):
    m = causal_mask((3, 3), 1, 1, mask_type)[:, :, 0, 0]
    expected = np.array([[1, 1, 1], [1, centre, 0], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(m, expected)
    m5 = causal_mask((5, 5), 2, 3, mask_type)
    expected5 = np.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, centre, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32
    )
    for i in range(2):
        for o in range(3):
            np.testing.assert_array_equal(m5[:, :, i, o], expected5)


def test_rgb_masks_by_hand():
    # Rows: input R, G, B. Columns: output R, G, B (at the kernel centre).
    a = causal_mask((3, 3), 3, 3, "A", groups=3)
    b = causal_mask((3, 3), 3, 3, "B", groups=3)
    np.testing.assert_array_equal(a[1, 1], [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(b[1, 1], [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    for m in (a, b):
        # Above and to the left: every group sees every group. Below and to the right: nothing.
        np.testing.assert_array_equal(m[0], np.ones((3, 3, 3)))
        np.testing.assert_array_equal(m[1, 0], np.ones((3, 3)))
        np.testing.assert_array_equal(m[1, 2], np.zeros((3, 3)))
        np.testing.assert_array_equal(m[2], np.zeros((3, 3, 3)))


def test_rgb_to_hidden_width_not_divisible_by_three():
    # RGB input -> 5 hidden channels, groups [R, G, B, R, G].
    a = causal_mask((1, 1), 3, 5, "A", groups=3)[0, 0]
    np.testing.assert_array_equal(a, [[0, 1, 1, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    b = causal_mask((1, 1), 5, 5, "B", groups=3)[0, 0]
    groups = np.array([0, 1, 2, 0, 1])
    np.testing.assert_array_equal(b, (groups[:, None] <= groups[None, :]).astype(np.float32))


def test_output_splits_repeat_the_layout_per_chunk():
    m = causal_mask((1, 1), 2, 4, "B", groups=3, output_splits=2)[0, 0]
    # Inputs [R, G]; outputs two chunks of [R, G].
    np.testing.assert_array_equal(m, [[1, 1, 1, 1], [0, 1, 0, 1]])


@pytest.mark.parametrize("kernel_size", [2, (3, 4)])
def test_even_kernels_rejected(kernel_size):
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2D(4, kernel_size)


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2D(4, 3, mask_type="C")
    with pytest.raises(ValueError, match="padding"):
        MaskedConv2D(4, 3, padding="valid")
    with pytest.raises(ValueError, match="output_splits"):
        MaskedConv2D(5, 3, output_splits=2)


def test_layer_harness():
    run_layer_test(
        MaskedConv2D,
        dict(filters=6, kernel_size=3, mask_type="B", color_groups=3, dilation_rate=2),
        input_shape=(2, 6, 7, 3),
        expected_output_shape=(2, 6, 7, 6),
        expected_num_trainable_weights=2,
    )


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("groups", [1, 3])
def test_causality_by_perturbation(mask_type, groups):
    h, w, cin, cout = 5, 5, 3, 6
    layer = MaskedConv2D(cout, 3, mask_type=mask_type, color_groups=groups, bias_initializer="ones")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, h, w, cin)).astype("float32")
    y = layer(x).numpy()
    in_g = channel_groups(cin, groups)
    out_g = channel_groups(cout, groups)
    for i in range(h):
        for j in range(w):
            for c in range(cin):
                x2 = x.copy()
                x2[0, i, j, c] += 3.0
                diff = np.abs(layer(x2).numpy() - y)[0]
                # Outputs at earlier pixels never change.
                flat = diff.reshape(h * w, cout)
                assert flat[: i * w + j].max(initial=0.0) == 0.0
                # At the same pixel, only output groups allowed by the mask type may change.
                allowed = in_g[c] < out_g if mask_type == "A" else in_g[c] <= out_g
                assert diff[i, j, ~allowed].max(initial=0.0) == 0.0
                if allowed.any():
                    assert diff[i, j, allowed].max() > 0.0


def test_kernel_is_never_modified_and_masked_entries_get_no_gradient():
    layer = MaskedConv2D(2, 3, mask_type="A", kernel_initializer="ones")
    x = tf.ones((1, 4, 4, 1))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    g = tape.gradient(y, layer.kernel).numpy()
    np.testing.assert_array_equal(layer.kernel.numpy(), np.ones((3, 3, 1, 2)))
    assert np.all(g[1, 1:] == 0.0) and np.all(g[2] == 0.0)
    assert np.all(g[0] != 0.0)
    # A dense optimizer step leaves the masked entries where they were.
    keras.optimizers.SGD(1.0).apply_gradients([(tf.convert_to_tensor(g), layer.kernel)])
    np.testing.assert_array_equal(layer.kernel.numpy()[2], np.ones((3, 1, 2)))
