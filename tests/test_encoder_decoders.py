import numpy as np

from tests.layer_harness import run_layer_test
from vpn_tf.models import BaselineDecoder, OutputHead, PixelCNNDecoder, ResolutionPreservingEncoder


def _ctx(batch, channels=6, size=5):
    return np.random.default_rng(1).normal(size=(batch, size, size, channels)).astype("float32")


def test_encoder_harness_and_dilations():
    enc = run_layer_test(
        ResolutionPreservingEncoder,
        dict(hidden=3, dilations=(1, 2, 4), block="rmb", condition_dim=2),
        input_shape=(2, 9, 9, 1),
        expected_output_shape=(2, 9, 9, 6),
        expected_num_trainable_weights=2 + 3 * 10,
        call_kwargs_fn=lambda b: {"condition": np.ones((b, 2), "float32")},
    )
    assert [b.dilation_rate for b in enc.blocks] == [1, 2, 4]


def test_pixelcnn_decoder_harness():
    run_layer_test(
        PixelCNNDecoder,
        dict(hidden=5, num_blocks=2, block="relu", channels=3, num_classes=256, top_channels=9, first_kernel_size=3),
        input_shape=(2, 5, 5, 3),
        expected_output_shape=(2, 5, 5, 3, 256),
        expected_num_trainable_weights=4 + 2 * 6 + 4,
        call_kwargs_fn=lambda b: {"context": _ctx(b)},
    )


def test_baseline_decoder_harness():
    run_layer_test(
        BaselineDecoder,
        dict(hidden=3, num_blocks=1, channels=1, num_classes=1, top_channels=8),
        input_shape=(2, 5, 5, 6),
        expected_output_shape=(2, 5, 5, 1, 1),
        expected_num_trainable_weights=2 + 8 + 4,
    )


def test_output_head_layout_puts_colour_c_logits_in_group_c():
    head = OutputHead(top_channels=6, channels=3, num_classes=4, masked=True)
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 6)).astype("float32")
    y = head(x).numpy()
    assert y.shape == (1, 2, 2, 3, 4) and y.dtype == np.float32
    # Zeroing the features of group 2 (B) leaves the R and G logits unchanged.
    x2 = x.copy()
    x2[..., 2::3] = 0.0
    y2 = head(x2).numpy()
    np.testing.assert_array_equal(y2[..., :2, :], y[..., :2, :])
    assert np.abs(y2[..., 2, :] - y[..., 2, :]).max() > 0
