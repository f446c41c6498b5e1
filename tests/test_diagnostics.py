import numpy as np
import pytest

from vpn_tf import diagnostics


class _PixelReader:
    """A stand-in with known answers: a frame reads right iff its top-left pixel equals 10 x its first digit class
    (the class, lit), or any grey frame of a lit pixel (a binarised pixel reads 0 or 255: wrong)."""

    def read_right(self, frames, classes):
        pixel = np.asarray(frames)[..., 0, 0, 0].astype(int)  # [N, T]
        return pixel == 10 * np.asarray(classes)[:, :1]


def test_legibility_rows_and_standard_errors():
    classes = np.array([[1, 2], [2, 3], [3, 4], [4, 5]])
    truth = np.zeros((4, 2, 64, 64, 1), np.uint8)
    truth[:, :, 0, 0, 0] = 10 * classes[:, :1]  # grey levels 10..40: read right
    samples = truth.copy()
    samples[:2, 1] = 0  # frame 2: half the samples unreadable
    out = diagnostics.legibility(_PixelReader(), truth, samples, classes)
    assert set(out) == {"samples", "true_frames", "binarised_true_frames", "chance"}
    np.testing.assert_allclose(out["samples"]["mean"], [1.0, 0.5])
    np.testing.assert_allclose(out["samples"]["stderr"], [0.0, np.sqrt(1 / 3 / 4)])
    np.testing.assert_allclose(out["true_frames"]["mean"], [1.0, 1.0])
    # Binarised grey levels are 0 or 255, never 10..40; and every sequence is read against another's classes.
    np.testing.assert_allclose(out["binarised_true_frames"]["mean"], [0.0, 0.0])
    np.testing.assert_allclose(out["chance"]["mean"], [0.0, 0.0])
    assert "samples" not in diagnostics.legibility(_PixelReader(), truth, None, classes)


def test_tracking_prefers_the_moving_truth_to_the_frame_held_still():
    n, t = 3, 4
    last = np.zeros((n, 64, 64, 1), np.uint8)
    last[:, 10:20, 10:20] = 255
    truth = np.zeros((n, t, 64, 64, 1), np.uint8)
    for k in range(t):  # the square moves 5 pixels right per frame
        truth[:, k, 10:20, 15 + 5 * k : 25 + 5 * k] = 255
    out = diagnostics.tracking(last, truth, truth)
    np.testing.assert_allclose(out["samples"]["mean"], 1.0, atol=1e-6)
    held = np.asarray(out["held_still"]["mean"])
    assert np.all(np.diff(held) < 0) and held[-1] < 0.5  # the still frame drifts away from the truth
    # A model that copies its last frame scores exactly what holding it still scores: no better.
    copies = np.repeat(last[:, None], t, axis=1)
    np.testing.assert_allclose(diagnostics.tracking(last, truth, copies)["samples"]["mean"], held)
    # Featureless or noisy samples do not track anything (a plain cosine of non-negative frames would reward them).
    grey = np.full_like(truth, 40)
    np.testing.assert_allclose(diagnostics.tracking(last, truth, grey)["samples"]["mean"], 0.0, atol=1e-9)
    noise = (np.random.default_rng(0).random(truth.shape) < 0.15).astype(np.uint8) * 255
    assert np.abs(diagnostics.tracking(last, truth, noise)["samples"]["mean"]).max() < 0.2
    with pytest.raises(ValueError, match="alike"):
        diagnostics.tracking(last, truth, truth[:, :2])
