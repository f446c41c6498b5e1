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


def write_samples(out: str, truth: np.ndarray, context: np.ndarray, samples, scale: int = 2) -> list[str]:
    """Writes `OUT/grid.png` (per sequence: the true video, then every sample's context + continuation under it, as
    in the paper's Fig. 4/5/7) and `OUT/sequence_B.gif` (truth | samples side by side, the truth padded with black
    past its end). Returns the paths.

    Args:
        truth: uint8 `[B, T, H, W, C]`, context included (may be shorter than context + continuation).
        context: uint8 `[B, T_ctx, H, W, C]`.
        samples: `[model][sample]` -> uint8 `[B, T_gen, H, W, C]` continuations.
    """
    os.makedirs(out, exist_ok=True)
    rows, paths = [], []
    for b in range(len(truth)):
        full = [np.concatenate([context[b], per_model[s][b]]) for per_model in samples for s in range(len(per_model))]
        rows += [truth[b], *full]
        padded = truth[b]
        if len(padded) < len(full[0]):
            padded = np.concatenate([padded, np.zeros_like(full[0][len(padded) :])])
        paths.append(os.path.join(out, f"sequence_{b}.gif"))
        save_gif(paths[-1], side_by_side([padded, *full]), scale=scale)
    paths.insert(0, os.path.join(out, "grid.png"))
    save_png(paths[0], video_grid(rows), scale=scale)
    return paths
