import math

import numpy as np
import pytest
import tensorflow as tf

from vpn_tf import distributions as D


def test_sigmoid_cross_entropy_matches_equation_5_by_hand():
    logits = np.array([[-2.0], [0.0], [3.0], [40.0], [-40.0]], "float32")[..., None]  # [5, 1, 1]
    pixels = np.array([[0], [255], [51], [255], [0]], np.uint8)
    out = D.sigmoid_cross_entropy(logits, pixels).numpy()[:, 0]
    z = pixels[:, 0] / 255.0
    y = 1 / (1 + np.exp(-logits[:, 0, 0].astype(np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = -(np.where(z > 0, z * np.log(y), 0) + np.where(z < 1, (1 - z) * np.log1p(-y), 0))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # Exact values: log 2 at logit 0, softplus(-2) for z=0.
    assert out[1] == pytest.approx(math.log(2.0), rel=1e-6)
    assert out[0] == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)


def test_cross_entropy_is_minimised_at_the_target_and_equals_the_entropy_there():
    pixels = np.arange(1, 255, 17, dtype=np.uint8)[:, None]
    z = pixels / 255.0
    exact_logits = np.log(z / (1 - z)).astype("float32")[..., None]
    h = D.sigmoid_cross_entropy(exact_logits, pixels).numpy()
    np.testing.assert_allclose(h, D.binary_entropy(pixels).numpy(), rtol=1e-4)
    for shift in (-0.5, 0.5):
        assert np.all(D.sigmoid_cross_entropy(exact_logits + shift, pixels).numpy() > h)


def test_binary_entropy_edges_and_values():
    h = D.binary_entropy(np.array([0, 255, 128], np.uint8)).numpy()
    assert h[0] == 0.0 and h[1] == 0.0
    z = 128 / 255
    assert h[2] == pytest.approx(-(z * math.log(z) + (1 - z) * math.log(1 - z)), rel=1e-6)


def test_categorical_log_prob_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 3, 256)).astype("float32")
    pixels = rng.integers(0, 256, size=(2, 3, 4, 3)).astype(np.uint8)
    out = D.categorical_log_prob(logits, pixels).numpy()
    lse = np.log(np.exp(logits.astype(np.float64)).sum(-1))
    ref = np.take_along_axis(logits, pixels[..., None].astype(int), -1)[..., 0] - lse
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # Uniform logits: exactly log(1/256) everywhere, 8 bits/dim.
    uni = D.categorical_log_prob(np.zeros((5, 3, 256), "float32"), np.tile(pixels[0, 0, 0], (5, 1)))
    np.testing.assert_allclose(uni.numpy(), -math.log(256), rtol=1e-6)
    assert D.nats_to_bits(-uni.numpy()[0, 0]) == pytest.approx(8.0)


def test_reductions_and_lower_bound():
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, size=(2, 5, 4, 4, 1)).astype(np.uint8)
    bound = D.lower_bound_nats_per_frame(video, context_frames=3).numpy()
    z = video[:, 3:].astype(np.float64) / 255
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.nan_to_num(z * np.log(z)) + np.nan_to_num((1 - z) * np.log(1 - z)))
    np.testing.assert_allclose(bound, ent.sum(axis=(2, 3, 4)).mean(axis=1), rtol=1e-5)
    values = tf.constant(rng.normal(size=(2, 3, 4, 4, 3)), tf.float32)
    np.testing.assert_allclose(D.per_frame(values).numpy(), values.numpy().sum(axis=(2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(D.per_dimension(values).numpy(), values.numpy().mean(axis=(1, 2, 3, 4)), rtol=1e-5)


def test_log_prob_dispatch():
    with pytest.raises(ValueError, match="output"):
        D.log_prob(np.zeros((1, 1, 1), "float32"), np.zeros((1, 1), np.uint8), "gaussian")


def test_binarize_draws_binary_pixels_with_the_grey_level_as_probability():
    levels = np.array([0, 1, 64, 128, 254, 255], np.uint8)
    pixels = np.tile(levels, (20000, 1))
    out = D.binarize(pixels, [3, 4]).numpy()
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    assert np.all(out[:, 0] == 0) and np.all(out[:, -1] == 255)  # the two ends are certain
    freq = (out == 255).mean(0)
    p = levels / 255.0
    stderr = np.sqrt(p * (1 - p) / len(pixels))
    assert np.all(np.abs(freq - p) <= 5 * stderr + 1e-12), (freq, p)
    # Stateless: the same seed draws the same pixels, another seed other ones; pixels are drawn independently.
    np.testing.assert_array_equal(out, D.binarize(pixels, [3, 4]).numpy())
    assert not np.array_equal(out, D.binarize(pixels, [3, 5]).numpy())
    half = out[:, 3] == 255
    assert abs(half[::2].mean() - half[1::2].mean()) < 0.03 and abs(np.corrcoef(half[::2], half[1::2])[0, 1]) < 0.03
