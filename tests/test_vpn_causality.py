"""Causality of the whole model by perturbation: p(x_d | x_<d) must not depend on x_d or anything after it."""

import numpy as np
import pytest

import vpn_tf


def _inputs(cfg, batch, rng):
    video = rng.integers(0, 256, size=(batch, cfg.num_frames, *cfg.frame_shape))
    kw = {}
    if cfg.action_dim:
        kw["actions"] = np.repeat(rng.normal(size=(1, cfg.num_frames, cfg.action_dim)), batch, 0).astype("float32")
    if cfg.state_dim:
        kw["states"] = np.repeat(rng.normal(size=(1, cfg.num_frames, cfg.state_dim)), batch, 0).astype("float32")
    return video.astype(np.uint8), kw


def _perturbation_diffs(model, cfg, positions, chunk=96):
    """For each predicted position d = (t, i, j, c), max |logit change| at every predicted position, flattened in
    (frame, row, column, channel) order: `[len(positions), T_pred * H * W * C]`."""
    rng = np.random.default_rng(0)
    base, kw = _inputs(cfg, 1, rng)
    ref = model.conditional_logits(base, **kw).numpy()
    out = []
    for s in range(0, len(positions), chunk):
        part = positions[s : s + chunk]
        videos = np.repeat(base, len(part), axis=0)
        for n, (t, i, j, c) in enumerate(part):
            videos[n, cfg.context_frames + t, i, j, c] ^= 0x80  # flip the top bit: a large change
        kw_n = {k: np.repeat(v, len(part), axis=0) for k, v in kw.items()}
        logits = model.conditional_logits(videos, **kw_n).numpy()
        diff = np.abs(logits - ref).max(axis=-1)  # over the K logits of each dimension
        out.append(diff.reshape(len(part), -1))
    return np.concatenate(out)


def _all_positions(cfg):
    tp = cfg.num_frames - cfg.context_frames
    return [
        (t, i, j, c)
        for t in range(tp)
        for i in range(cfg.height)
        for j in range(cfg.width)
        for c in range(cfg.channels)
    ]


@pytest.mark.parametrize(
    "preset, block, wiring, frame",
    [(p, b, "every_block", (8, 8)) for p in ("tiny", "tiny_rgb") for b in ("rmb", "relu")]
    + [("tiny_rgb", "rmb", "every_layer", (8, 8))]
    # Oblong frames: a row index mistaken for a column (or W for H) anywhere would show here.
    + [("tiny", "rmb", "every_block", (5, 9)), ("tiny_rgb", "relu", "every_layer", (7, 4))],
)
def test_vpn_conditionals_depend_only_on_earlier_dimensions(preset, block, wiring, frame):
    # Wider than `tiny` (16 channels per colour group instead of 3) so that no pixel's logits sit behind all-dead
    # ReLUs at initialisation, which would fail the over-masking checks below for a reason that is not the masks.
    cfg = vpn_tf.get_config(
        preset, block=block, hidden=24, top_channels=60, context_wiring=wiring, height=frame[0], width=frame[1]
    )
    model = vpn_tf.build_model(cfg)
    positions = _all_positions(cfg)  # every predicted dimension: borders, first/last rows and columns, all channels
    diffs = _perturbation_diffs(model, cfg, positions)
    h, w, ch = cfg.frame_shape
    for n, (t, i, j, c) in enumerate(positions):
        d = ((t * h + i) * w + j) * ch + c  # flat index of the perturbed dimension
        assert diffs[n, : d + 1].max() <= 1e-5, (
            f"logits at or before {(t, i, j, c)} changed by {diffs[n, : d + 1].max()}"
        )
        if d + 1 < diffs.shape[1]:
            assert diffs[n, d + 1 :].max() > 1e-4, f"nothing after {(t, i, j, c)} depends on it"
        # The model is not over-masked: the next colour of the same pixel and the next pixel of the row react.
        if c + 1 < ch:
            assert diffs[n, d + 1] > 1e-6, f"colour {c + 1} at {(t, i, j)} ignores colour {c}"
        if j + 1 < w:
            assert diffs[n, d - c + ch : d - c + 2 * ch].max() > 1e-6, f"pixel {(t, i, j + 1)} ignores {(t, i, j)}"


@pytest.mark.parametrize("preset", ["tiny", "tiny_rgb"])
def test_baseline_conditionals_of_frame_t_ignore_frame_t(preset):
    cfg = vpn_tf.get_config(preset, model="baseline")
    model = vpn_tf.build_model(cfg)
    h, w, ch = cfg.frame_shape
    per_frame = h * w * ch
    positions = [p for p in _all_positions(cfg) if p[1] in (0, h - 1) or p[2] in (0, w // 2)]
    diffs = _perturbation_diffs(model, cfg, positions)
    for n, (t, _i, _j, _c) in enumerate(positions):
        assert diffs[n, : (t + 1) * per_frame].max() <= 1e-5, f"frame {t} conditionals depend on frame {t}"
        if (t + 2) * per_frame <= diffs.shape[1]:
            assert diffs[n, (t + 1) * per_frame :].max() > 1e-4  # but the next frame does


def test_context_frames_change_every_predicted_frame():
    cfg = vpn_tf.get_config("tiny")
    model = vpn_tf.build_model(cfg)
    rng = np.random.default_rng(0)
    video, _ = _inputs(cfg, 1, rng)
    ref = model.conditional_logits(video).numpy()
    v2 = video.copy()
    v2[0, 0] ^= 0x80
    diff = np.abs(model.conditional_logits(v2).numpy() - ref)
    assert all(diff[0, t].max() > 1e-4 for t in range(diff.shape[1]))
