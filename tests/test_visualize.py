"""The pictures (vpn_tf/visualize.py): the labelled grid keeps every frame's pixels and puts its divider exactly
between context and prediction; the labelled animation marks generated panels only; write_samples round-trips."""

import numpy as np
import pytest
from PIL import Image

from vpn_tf import visualize

H, W, CTX, T = 6, 5, 3, 7


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (T, H, W, 1), dtype=np.uint8) for _ in range(n)]


def _layout(grid_image, rows, scale):
    """(x, y) where the plain grid sits inside the labelled one (found, not assumed), comparing every column but
    the divider's, which is drawn over the gap between two frames."""
    plain = visualize._rgb(visualize.video_grid(rows)).repeat(scale, 0).repeat(scale, 1)
    hh, ww = plain.shape[:2]
    divider = set(_divider_columns(grid_image))
    for y in range(grid_image.shape[0] - hh + 1):
        for x in range(grid_image.shape[1] - ww + 1):
            keep = [i for i in range(ww) if x + i not in divider]
            if np.array_equal(grid_image[y : y + hh, x : x + ww][:, keep], plain[:, keep]):
                return x, y
    return None


def _divider_columns(image):
    """The columns painted the prediction colour from top to bottom."""
    full = np.all(image == np.array(visualize.PREDICTED, np.uint8), axis=-1).all(axis=0)
    return np.flatnonzero(full)


@pytest.mark.parametrize("scale", [1, 2])
def test_labelled_grid_keeps_the_frames_and_divides_context_from_prediction(scale):
    rows = _rows(3)
    image = visualize.labelled_grid(rows, ["truth", "VPN", "baseline"], CTX, scale=scale)
    where = _layout(image, rows, scale)
    assert where is not None  # every frame's pixels, unchanged, in one block
    x0 = where[0]
    gap = 2
    last_context_end = x0 + (CTX * (W + gap) - gap) * scale  # first column after the last context frame
    first_predicted = x0 + CTX * (W + gap) * scale
    divider = _divider_columns(image)
    assert divider.size and divider.min() >= last_context_end and divider.max() < first_predicted  # in the gap
    # Negative control: the same check fails for a divider drawn one frame late.
    late = visualize.labelled_grid(rows, ["truth", "VPN", "baseline"], CTX + 1, scale=scale)
    assert not (_divider_columns(late).max() < first_predicted)


def test_labelled_grid_names_every_row():
    with pytest.raises(ValueError, match="one label per row: 2 rows, 1 labels"):
        visualize.labelled_grid(_rows(2), ["truth"], CTX)
    rows = _rows(2)
    image = visualize.labelled_grid(rows, ["a", "a much longer label"], CTX)
    x0, y0 = _layout(image, rows, 2)
    margin = image[y0:, :x0]
    row_h = (H + 2) * 2
    for r in range(2):  # each row's label is drawn in its own band of the margin
        band = margin[r * row_h : (r + 1) * row_h]
        assert np.any(band.astype(int).min(axis=-1) > max(visualize.BACKGROUND) + 60), r  # light (anti-aliased) text
    # The longer label reaches further right than the shorter one.
    inked = [
        np.flatnonzero(np.any(margin[r * row_h : (r + 1) * row_h] != visualize.BACKGROUND, axis=(0, 2))) for r in (0, 1)
    ]
    assert inked[1].max() > inked[0].max()


def test_labelled_animation_marks_generated_panels_only():
    truth, sample = _rows(2)
    frames = visualize.labelled_animation([truth, sample], ["truth", "VPN"], CTX, scale=1)
    assert frames.shape[0] == T and frames.dtype == np.uint8
    red = np.all(frames == np.array(visualize.PREDICTED, np.uint8), axis=-1)
    size = 8  # the text size at scale 1 (a sixth of the frame, at least 8): label row and caption are 2 * size high
    panels = red[:, 2 * size : -2 * size]  # the panel row only, without the coloured caption
    half = frames.shape[2] // 2
    for k in range(T):
        assert not panels[k, :, :half].any(), k  # the truth's panel never gets a border
        assert panels[k, :, half:].any() == (k >= CTX), k
    # Labelled "truth" or not, the first panel is the truth's.
    relabelled = visualize.labelled_animation([truth, sample], ["a", "truth"], CTX, scale=1)
    red = np.all(relabelled == np.array(visualize.PREDICTED, np.uint8), axis=-1)[:, 2 * size : -2 * size]
    assert not red[:, :, :half].any() and red[CTX:, :, half:].any()


def test_rows_share_one_label_row_and_one_caption():
    one = visualize.labelled_animation(_rows(2), ["truth", "VPN"], CTX, scale=1)
    two = visualize.labelled_rows_animation([_rows(2), _rows(2, seed=1)], ["truth", "VPN"], CTX, scale=1)
    panel_h = H + 2 * 2  # the frame and its border
    assert two.shape[2] == one.shape[2] and two.shape[1] == one.shape[1] + panel_h + 4
    with pytest.raises(ValueError, match="one label per video: 3 videos, 2 labels"):
        visualize.labelled_rows_animation([_rows(2), _rows(3)], ["truth", "VPN"], CTX)


def test_write_samples_round_trips_through_the_files(tmp_path):
    truth = _rows(2)
    batch = np.stack(truth)  # two sequences
    context = batch[:, :CTX]
    samples = [[batch[:, CTX:]], [batch[:, CTX:][::-1]]]  # two models, one sample each
    paths = visualize.write_samples(str(tmp_path), batch, context, samples, scale=1, labels=["VPN", "baseline"])
    assert [p.split("/")[-1] for p in paths] == ["grid.png", "sequence_0.gif", "sequence_1.gif", "all.gif"]
    both = Image.open(paths[3])
    assert both.n_frames == T and both.size[1] > Image.open(paths[1]).size[1]  # both sequences, stacked
    gif = Image.open(paths[1])
    assert gif.n_frames == T
    grid = np.asarray(Image.open(paths[0]).convert("RGB"))
    rows = [batch[0], batch[0], np.concatenate([context[0], batch[1, CTX:]]), batch[1]]
    rows += [np.concatenate([context[1], batch[1, CTX:]]), np.concatenate([context[1], batch[0, CTX:]])]
    assert _layout(grid, rows, 1) is not None
    with pytest.raises(ValueError, match="one label per model: 2 models, 1 labels"):
        visualize.write_samples(str(tmp_path), batch, context, samples, labels=["VPN"])
