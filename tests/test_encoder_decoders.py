import keras
import numpy as np
import pytest
import tensorflow as tf

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
        # frame input, context features and per-block context maps (kernel + bias each), 2 blocks, head
        expected_num_trainable_weights=6 + 2 * 6 + 4,
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


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("block", ["rmb", "relu"])
def test_pixelcnn_decoder_reads_the_context_all_around_the_pixel(channels, block):
    """The context depends on past frames only, so pixel (i, j) may read all of it: perturbing the context at, right
    of, below or below-left of (i, j) must move (i, j)'s logits. With a 1x1 context projection (the negative
    control) the masked layers pass up nothing right of or below the pixel: only the context at the pixel reaches it."""
    rng = np.random.default_rng(channels)
    frame = tf.constant(rng.uniform(-1, 1, (1, 8, 8, channels)), tf.float32)
    context = rng.normal(size=(1, 8, 8, 6)).astype(np.float32)
    i, j = 3, 3
    around = {(0, 0), (0, 1), (1, 0), (1, -1)}
    for wiring, kernel, reached in (
        ("every_block", 3, around),
        ("every_layer", 3, around),
        ("every_block", 1, {(0, 0)}),
    ):
        keras.utils.set_random_seed(1)
        decoder = PixelCNNDecoder(
            8,
            2,
            first_kernel_size=3,
            block=block,
            channels=channels,
            num_classes=4,
            top_channels=24,
            context_wiring=wiring,
            context_kernel_size=kernel,
        )
        decoder.build((1, 8, 8, channels), (1, 8, 8, 6))
        ref = decoder(frame, tf.constant(context)).numpy()[0, i, j]
        for di, dj in [(0, 0), (0, 1), (1, 0), (1, -1), (2, 2)]:
            moved = context.copy()
            moved[0, i + di, j + dj] += 3.0
            diff = np.abs(decoder(frame, tf.constant(moved)).numpy()[0, i, j] - ref).max(axis=-1)  # per colour
            if (di, dj) in reached:
                assert diff.min() > 1e-4, f"{wiring}: context at offset {(di, dj)} does not reach every colour"
            elif kernel == 1:
                assert diff.max() == 0.0, f"1x1 context: the context at {(di, dj)} reached the pixel"
        if wiring == "every_layer":  # the topmost layer's map is unmasked: every colour reads it directly
            assert decoder.context_top.kernel.shape == (1, 1, 16, 24)
