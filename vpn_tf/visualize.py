"""Pictures of videos: grids like the paper's Fig. 4 / 5 / 7, animated GIFs, PNGs."""

from __future__ import annotations

import os

import numpy as np


def video_grid(rows: list[np.ndarray], gap: int = 2, fill: int = 128) -> np.ndarray:
    """Lays out rows of frames `[T, H, W, C]` as one uint8 image `[H', W', C]`; shorter rows are right-aligned so
    that predicted frames line up under the ground truth's future frames."""
    t = max(len(r) for r in rows)
    h, w, c = rows[0].shape[1:]
    grid = np.full(((h + gap) * len(rows) - gap, (w + gap) * t - gap, c), fill, np.uint8)
    for i, row in enumerate(rows):
        offset = t - len(row)
        for j, frame in enumerate(row):
            y, x = i * (h + gap), (offset + j) * (w + gap)
            grid[y : y + h, x : x + w] = frame
    return grid


def _image(array: np.ndarray, scale: int = 1):
    from PIL import Image

    array = np.asarray(array, np.uint8)
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def save_png(path: str, image: np.ndarray, scale: int = 1) -> None:
    _image(image, scale).save(path)


def save_gif(path: str, frames: np.ndarray, fps: float = 4.0, scale: int = 1) -> None:
    """Writes uint8 frames `[T, H, W, C]` (or side-by-side panels) as a looping animated GIF."""
    images = [_image(f, scale) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def side_by_side(videos: list[np.ndarray], gap: int = 2, fill: int = 128) -> np.ndarray:
    """Videos `[T, H, W, C]` of equal length placed next to each other in every frame -> `[T, H, W', C]`."""
    t, h, _, c = videos[0].shape
    out = []
    for k in range(t):
        parts = []
        for v in videos:
            parts += [v[k], np.full((h, gap, c), fill, np.uint8)]
        out.append(np.concatenate(parts[:-1], axis=1))
    return np.stack(out)


# Colours of the labelled pictures: the divider and border that mark predicted frames, and the label text.
PREDICTED = (230, 60, 40)
TEXT = (255, 255, 255)
BACKGROUND = (40, 40, 40)


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # bundled with Pillow: nothing is downloaded


def _rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, np.uint8)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def labelled_grid(
    rows: list[np.ndarray], labels: list[str], context_frames: int, scale: int = 2, gap: int = 2
) -> np.ndarray:
    """`video_grid` with a label left of every row, "context" and "predicted" over the columns, and a vertical
    divider between the last context frame and the first predicted one. Rows are `[T, H, W, C]` uint8, all of the
    same length (context included); returns RGB uint8 `[H', W', 3]`."""
    from PIL import Image, ImageDraw

    if len(rows) != len(labels):
        raise ValueError(f"one label per row: {len(rows)} rows, {len(labels)} labels")
    grid = _rgb(video_grid(rows, gap=gap)).repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = rows[0].shape[1:3]
    size = max(8, h * scale // 6)  # text a sixth of a frame high: legible beside the frames at any scale
    font = _font(size)
    margin = max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font)) for t in labels) + size
    header = 2 * size
    image = Image.new("RGB", (margin + grid.shape[1], header + grid.shape[0]), BACKGROUND)
    image.paste(Image.fromarray(grid), (margin, header))
    draw = ImageDraw.Draw(image)
    row_h = (h + gap) * scale
    for i, label in enumerate(labels):
        draw.text((size // 2, header + i * row_h + row_h // 2), label, fill=TEXT, font=font, anchor="lm")
    split = margin + context_frames * (w + gap) * scale - gap * scale // 2 - 1
    draw.text((margin, header // 2), "context", fill=TEXT, font=font, anchor="lm")
    draw.text((split + 2 * scale, header // 2), "predicted", fill=PREDICTED, font=font, anchor="lm")
    draw.rectangle([split - scale // 2, 0, split + scale // 2, image.height], fill=PREDICTED)
    return np.asarray(image)


def labelled_animation(
    videos: list[np.ndarray], labels: list[str], context_frames: int, scale: int = 2, gap: int = 4
) -> np.ndarray:
    """Videos `[T, H, W, C]` side by side in every frame, each under its label, with a caption saying whether the
    frame is given ("context t") or generated ("predicted t", and a border around the generated panels: the first
    panel, the truth's, keeps none). Returns RGB uint8 `[T, H', W', 3]`."""
    return labelled_rows_animation([videos], labels, context_frames, scale, gap)


def labelled_rows_animation(
    rows: list[list[np.ndarray]], labels: list[str], context_frames: int, scale: int = 2, gap: int = 4
) -> np.ndarray:
    """`labelled_animation` of several rows (e.g. one per sequence) under one row of column labels and over one
    caption. Returns RGB uint8 `[T, H', W', 3]`."""
    from PIL import Image, ImageDraw

    for videos in rows:
        if len(videos) != len(labels):
            raise ValueError(f"one label per video: {len(videos)} videos, {len(labels)} labels")
    t, h, w, _ = rows[0][0].shape
    size = max(8, h * scale // 6)  # text a sixth of a frame high
    font = _font(size)
    header, footer, pad = 2 * size, 2 * size, 2 * scale
    panel_w, panel_h = w * scale + 2 * pad, h * scale + 2 * pad
    width = len(labels) * (panel_w + gap) - gap
    height = header + len(rows) * (panel_h + gap) - gap + footer
    frames = []
    for k in range(t):
        image = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        predicted = k >= context_frames
        for i, label in enumerate(labels):
            draw.text((i * (panel_w + gap) + panel_w // 2, header // 2), label, fill=TEXT, font=font, anchor="mm")
        for r, videos in enumerate(rows):
            y = header + r * (panel_h + gap)
            for i, video in enumerate(videos):
                x = i * (panel_w + gap)
                if predicted and i > 0:  # the first panel is the truth
                    draw.rectangle([x, y, x + panel_w - 1, y + panel_h - 1], fill=PREDICTED)
                frame = _rgb(video[k]).repeat(scale, axis=0).repeat(scale, axis=1)
                image.paste(Image.fromarray(frame), (x + pad, y + pad))
        caption = f"predicted {k + 1}" if predicted else f"context {k + 1}"
        colour = PREDICTED if predicted else TEXT
        draw.text((width // 2, height - footer // 2), caption, fill=colour, font=font, anchor="mm")
        frames.append(np.asarray(image))
    return np.stack(frames)


def write_samples(
    out: str, truth: np.ndarray, context: np.ndarray, samples, scale: int = 2, labels: list[str] | None = None
) -> list[str]:
    """Writes `OUT/grid.png` (per sequence: the true video, then every sample's context + continuation under it, as
    in the paper's Fig. 4/5/7, every row labelled, a divider between context and prediction) and
    `OUT/sequence_B.gif` (truth | samples side by side, labelled, the truth padded with black past its end) and
    `OUT/all.gif` (every sequence, one row each). Returns the paths.

    Args:
        truth: uint8 `[B, T, H, W, C]`, context included (may be shorter than context + continuation).
        context: uint8 `[B, T_ctx, H, W, C]`.
        samples: `[model][sample]` -> uint8 `[B, T_gen, H, W, C]` continuations.
        labels: one name per model (default "model 1", "model 2", ...); rows say "NAME, sample S".
    """
    os.makedirs(out, exist_ok=True)
    labels = labels or [f"model {m + 1}" for m in range(len(samples))]
    if len(labels) != len(samples):
        raise ValueError(f"one label per model: {len(samples)} models, {len(labels)} labels")
    names = [
        f"{labels[m]}, sample {s + 1}" if len(per_model) > 1 else labels[m]
        for m, per_model in enumerate(samples)
        for s in range(len(per_model))
    ]
    rows, row_labels, paths, animated = [], [], [], []
    n_ctx = context.shape[1]
    for b in range(len(truth)):
        full = [np.concatenate([context[b], per_model[s][b]]) for per_model in samples for s in range(len(per_model))]
        padded = truth[b]
        if len(padded) < len(full[0]):
            padded = np.concatenate([padded, np.zeros_like(full[0][len(padded) :])])
        rows += [padded, *full]
        row_labels += [f"truth {b + 1}", *names]
        animated.append([padded, *full])
        paths.append(os.path.join(out, f"sequence_{b}.gif"))
        save_gif(paths[-1], labelled_animation(animated[-1], ["truth", *names], n_ctx, scale=scale))
    paths.insert(0, os.path.join(out, "grid.png"))
    save_png(paths[0], labelled_grid(rows, row_labels, n_ctx, scale=scale))
    paths.append(os.path.join(out, "all.gif"))
    save_gif(paths[-1], labelled_rows_animation(animated, ["truth", *names], n_ctx, scale=scale))
    return paths
