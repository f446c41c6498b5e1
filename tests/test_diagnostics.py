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


def _squares(n, t, size=32, step=4):
    """n sequences of a bright square moving `step` pixels right per frame on a dark colour frame, each sequence's
    square in another row (so their scores differ), and the frame before them (the last context frame)."""
    frames = np.full((n, t + 1, size, size, 3), 20, np.uint8)
    for b in range(n):
        for k in range(t + 1):
            frames[b, k, 4 + 6 * b : 12 + 6 * b, 2 + step * k : 10 + step * (k + b % 2 + 1)] = 230
    return frames[:, 0], frames[:, 1:]


def test_ssim_is_one_for_the_truth_and_lower_for_other_frames():
    last, truth = _squares(2, 3)
    np.testing.assert_allclose(diagnostics.ssim(truth[:, 0], truth[:, 0]), 1.0, atol=1e-6)
    assert np.all(diagnostics.ssim(last, truth[:, 0]) < 0.9)
    tiny = np.zeros((1, 6, 6, 1), np.uint8)  # narrower than the 11 x 11 window: the window narrows
    np.testing.assert_allclose(diagnostics.ssim(tiny + 50, tiny + 50), 1.0, atol=1e-6)
    # Exact values on constant frames: no structure, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2
    # on the 0..255 scale; colour frames average their channels.
    c1 = (0.01 * 255) ** 2
    expected = lambda a, b: (2 * a * b + c1) / (a * a + b * b + c1)  # noqa: E731
    a = np.zeros((1, 16, 16, 3), np.uint8)
    b = np.zeros((1, 16, 16, 3), np.uint8)
    b[..., 0], b[..., 1], b[..., 2] = 10, 0, 40
    want = (expected(0, 10) + expected(0, 0) + expected(0, 40)) / 3
    np.testing.assert_allclose(diagnostics.ssim(a, b), want, rtol=1e-4)
    with pytest.raises(ValueError, match="alike"):
        diagnostics.ssim(truth[:, 0], truth[:, 0, :16])
    with pytest.raises(ValueError, match="uint8 frames.*float32"):  # 0..1 floats would score as near-black
        diagnostics.ssim(truth[:, 0].astype(np.float32) / 255, truth[:, 0])


def test_best_of_ssim_takes_each_sequences_best_sample():
    n, t = 4, 4
    last, truth = _squares(n, t)
    noise = np.random.default_rng(0).integers(0, 256, truth.shape).astype(np.uint8)
    held = np.repeat(last[:, None], t, axis=1)
    # The truth is sample 1 in sequence 0 and sample 0 in sequence 1; elsewhere the samples are noise and the frame
    # held still. So the best is neither always the first nor always the last sample.
    first, second = noise.copy(), held.copy()
    second[0] = truth[0]
    first[1] = truth[1]
    out = diagnostics.best_of_ssim(last, truth, np.stack([first, second]))
    assert out["samples"] == 2
    per_sequence_still = np.stack([diagnostics.ssim(last, truth[:, k]) for k in range(t)], axis=1)  # [n, t]
    assert np.ptp(per_sequence_still, axis=0).min() > 1e-3  # the sequences differ: pairing matters
    still = np.asarray(out["held_still"]["mean"])
    np.testing.assert_allclose(still, per_sequence_still.mean(0), atol=1e-9)
    assert np.all(np.diff(still) < 0)  # the still frame drifts away from the moving truth
    # Best of 2: sequences 0 and 1 score 1, sequence 2 and 3 what holding still scores (noise is worse).
    best = per_sequence_still.copy()
    best[:2] = 1.0
    np.testing.assert_allclose(out["best_of_k"]["mean"], best.mean(0), atol=1e-6)
    scores = np.stack(
        [np.stack([diagnostics.ssim(s[:, k], truth[:, k]) for k in range(t)], axis=1) for s in (first, second)]
    )
    np.testing.assert_allclose(out["mean_of_k"]["mean"], scores.mean(0).mean(0), atol=1e-6)
    # The paired row: each sequence's own gain over holding still, with the standard error of those gains.
    gain = best - per_sequence_still
    np.testing.assert_allclose(out["best_of_k_minus_held_still"]["mean"], gain.mean(0), atol=1e-6)
    np.testing.assert_allclose(out["best_of_k_minus_held_still"]["stderr"], gain.std(0, ddof=1) / np.sqrt(n), atol=1e-6)
    unpaired = np.hypot(best.std(0, ddof=1), per_sequence_still.std(0, ddof=1)) / np.sqrt(n)
    assert np.all(np.abs(np.asarray(out["best_of_k_minus_held_still"]["stderr"]) - unpaired) > 1e-4)
    # Negative control: noise alone follows the truth worse than the frame held still.
    alone = diagnostics.best_of_ssim(last, truth, noise[None])
    assert np.all(np.asarray(alone["best_of_k"]["mean"]) < still)
    with pytest.raises(ValueError, match="alike"):
        diagnostics.best_of_ssim(last, truth, truth)  # no K axis
    # The binary reference rows score their own draws the same way: the truth itself scores 1, the frame held
    # still what holding still scores; without the argument there are no such rows.
    ref = diagnostics.best_of_ssim(last, truth, np.stack([first, second]), np.stack([truth, held]))
    np.testing.assert_allclose(ref["binarised_truth_best_of_k"]["mean"], 1.0, atol=1e-6)
    np.testing.assert_allclose(
        ref["binarised_truth_mean_of_k"]["mean"], (1 + per_sequence_still.mean(0)) / 2, atol=1e-6
    )
    assert ref["best_of_k"] == out["best_of_k"] and "binarised_truth_best_of_k" not in out
    with pytest.raises(ValueError, match="binarised_truth shaped like samples"):
        diagnostics.best_of_ssim(last, truth, np.stack([first, second]), truth[None])


def test_ssim_report_draws_sample_s_with_seed_s():
    import vpn_tf
    from vpn_tf.sampling import Sampler

    c = vpn_tf.get_config("tiny_rgb")
    model = vpn_tf.build_model(c)
    rng = np.random.default_rng(1)
    n_ctx = c.context_frames
    video = rng.integers(0, 256, (2, n_ctx + 2, *c.frame_shape)).astype(np.uint8)
    kw = {  # the config is conditioned on both: they reach every continuation
        "actions": rng.normal(size=(2, n_ctx + 2, c.action_dim)).astype("float32"),
        "states": rng.normal(size=(2, n_ctx, c.state_dim)).astype("float32"),
    }
    out = diagnostics.ssim_report(model, video, samples=2, seed=5, **kw)
    drawn = np.stack([Sampler(model).sample(video[:, :n_ctx], 2, (5, s), **kw) for s in range(2)])
    expected = diagnostics.best_of_ssim(video[:, n_ctx - 1], video[:, n_ctx:], drawn)
    for row in ("best_of_k", "mean_of_k"):
        np.testing.assert_allclose(out[row]["mean"], expected[row]["mean"])
    assert "binarised_truth_best_of_k" not in out  # a softmax model draws any level: no binary reference
    with pytest.raises(ValueError, match="samples"):
        diagnostics.ssim_report(model, video, samples=0, **kw)


def test_ssim_report_of_a_sigmoid_model_adds_the_binarised_truth():
    import vpn_tf

    c = vpn_tf.get_config("tiny")
    model = vpn_tf.build_model(c)
    n_ctx = c.context_frames
    video = np.random.default_rng(2).integers(0, 256, (3, n_ctx + 2, *c.frame_shape)).astype(np.uint8)
    out = diagnostics.ssim_report(model, video, samples=2, seed=4)
    future = video[:, n_ctx:]
    draws = [np.where(np.random.default_rng((4, s)).random(future.shape) < future / 255.0, 255, 0) for s in range(2)]
    scores = np.stack([[diagnostics.ssim(d[:, k].astype(np.uint8), future[:, k]) for k in range(2)] for d in draws])
    np.testing.assert_allclose(out["binarised_truth_best_of_k"]["mean"], scores.max(0).mean(-1), atol=1e-6)
    np.testing.assert_allclose(out["binarised_truth_mean_of_k"]["mean"], scores.mean(0).mean(-1), atol=1e-6)
    # Binary draws of grey frames stay below 1: the reason this reference exists.
    assert np.all(np.asarray(out["binarised_truth_best_of_k"]["mean"]) < 0.9)
    lines = diagnostics.ssim_lines(out, n_ctx + 1, 3)
    assert any(line.strip().startswith("binarised truth, best of 2") for line in lines)
