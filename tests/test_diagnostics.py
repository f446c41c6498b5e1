import numpy as np
import pytest

from vpn_tf import diagnostics


class _FixedReader:
    """Reads a frame right iff its top-left pixel is lit (a stand-in with known answers)."""

    def read_right(self, frames, classes):
        return np.asarray(frames)[..., 0, 0, 0] > 0


def test_legibility_rows_and_standard_errors():
    truth = np.zeros((4, 2, 64, 64, 1), np.uint8)
    truth[:, :, 0, 0] = 255
    samples = truth.copy()
    samples[:2, 1] = 0  # frame 2: half the samples unreadable
    out = diagnostics.legibility(_FixedReader(), truth, samples, np.zeros((4, 2), int))
    assert set(out) == {"samples", "true_frames", "binarised_true_frames", "chance"}
    np.testing.assert_allclose(out["samples"]["mean"], [1.0, 0.5])
    np.testing.assert_allclose(out["samples"]["stderr"], [0.0, np.sqrt(1 / 3 / 4)])
    np.testing.assert_allclose(out["true_frames"]["mean"], [1.0, 1.0])
    assert "samples" not in diagnostics.legibility(_FixedReader(), truth, None, np.zeros((4, 2), int))


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
    with pytest.raises(ValueError, match="alike"):
        diagnostics.tracking(last, truth, truth[:, :2])
