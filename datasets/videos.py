"""Your own videos as a dataset: `python -m datasets.videos SRC... --out DIR --split NAME`.

Sources (any mix, converted in the order given; folders in sorted name order):
- `.npy` / `.npz` arrays of uint8 videos, `[N, T, H, W]` or `[N, T, H, W, C]` (`--layout NTHW`, the default) or
  time-major `[T, N, H, W(, C)]` (`--layout TNHW`, like the standard `mnist_test_seq.npy`). Integer arrays must
  hold values in [0, 255], float arrays values in [0, 1] (scaled by 255 and rounded).
- video files: GIF (decoded by Pillow; frames at the GIF's most common frame duration, so a frame shown twice as
  long counts twice, as GIF writers merge identical consecutive frames), MP4, WebM, MOV, MKV, AVI (decoded by PyAV,
  whose wheels bundle FFmpeg);
- frame folders: a folder of images (PNG, JPEG, BMP, ...) is one clip, its frames in natural name order
  (frame2.png before frame10.png);
- a folder of any of these.

What is written to `--out`: `SPLIT-00000-of-0000K.tfrecord` shards in the shared video format
(`datasets.tfrecord`, uncompressed so that training reads any record directly and resumes exactly) and `SPLIT.json`,
the split's metadata: frame height, width, channels, frames per sequence (the shortest and the longest), sequence
count, action and state sizes, the shard files and the sources. Splits `train`, `validation` and `test` are what
`dataset="videos"` reads (`--data_dir DIR`); other names are allowed for your own use.

Clips are cut into sequences of `--frames` frames (consecutive, the remainder dropped) or kept whole. Actions and
states (`--actions`, `--states`): per-frame vectors from a side file, either one array for all clips in conversion
order (`[N, T, dim]`, or `[T, N, dim]` with `--layout TNHW`) or a folder with one `NAME.npy` `[T, dim]` per clip
(NAME: the video file's or frame folder's name without extension).

All shards are written in a temporary folder inside `--out` and moved into place only when every clip converted:
bad input (an unreadable file, mixed frame sizes without `--height/--width`, a clip shorter than `--frames`, a
wrong dtype or value range, an action file of the wrong length) stops the conversion with an error naming the file
and leaves `--out` as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

import numpy as np

from . import tfrecord as tfr

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
GIF_EXTENSIONS = (".gif",)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ARRAY_EXTENSIONS = (".npy", ".npz")
LAYOUTS = ("NTHW", "TNHW")
SPLITS = ("train", "validation", "test")
FORMAT = "vpn_tf videos 1"


# ---------------------------------------------------------------------------------------------------------------------
# Reading the sources
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Clip:
    """One source clip: uint8 frames `[T, H, W, C]` (C 1 or 3), where it came from, and its name."""

    frames: np.ndarray
    source: str
    name: str


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _listdir(path):
    return sorted((f for f in os.listdir(path) if not f.startswith(".")), key=_natural_key)


def _is_frame_folder(path) -> bool:
    return os.path.isdir(path) and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in _listdir(path))


def discover(sources) -> list[tuple[str, str]]:
    """(path, kind) of every clip source under `sources`, kind "array", "gif", "video" or "frames"."""
    found = []
    for src in sources:
        if not os.path.exists(src):
            raise tfr.DataError(f"{src}: no such file or folder")
        if os.path.isdir(src):
            if _is_frame_folder(src):
                found.append((src, "frames"))
                continue
            inner = [os.path.join(src, f) for f in _listdir(src)]
            kinds = [(p, _kind(p)) for p in inner]
            kinds = [(p, k) for p, k in kinds if k is not None]
            if not kinds:
                raise tfr.DataError(
                    f"{src}: holds no arrays ({', '.join(ARRAY_EXTENSIONS)}), videos "
                    f"({', '.join(GIF_EXTENSIONS + VIDEO_EXTENSIONS)}) or frame folders"
                )
            found.extend(kinds)
        else:
            kind = _kind(src)
            if kind is None:
                raise tfr.DataError(
                    f"{src}: not a source this converter reads (arrays {', '.join(ARRAY_EXTENSIONS)}, videos "
                    f"{', '.join(GIF_EXTENSIONS + VIDEO_EXTENSIONS)}, or a folder of frames)"
                )
            found.append((src, kind))
    return found


def _kind(path):
    low = path.lower()
    if os.path.isdir(path):
        return "frames" if _is_frame_folder(path) else None
    if low.endswith(ARRAY_EXTENSIONS):
        return "array"
    if low.endswith(GIF_EXTENSIONS):
        return "gif"
    if low.endswith(VIDEO_EXTENSIONS):
        return "video"
    return None


def _as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 pixels from an integer array in [0, 255] or a float array in [0, 1]; a DataError naming `where`."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise tfr.DataError(f"{where}: {array.dtype} values must lie in [0, 255]; found {lo} .. {hi}")
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise tfr.DataError(f"{where}: {array.dtype} values hold NaN or Inf")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0 or hi > 1:
            raise tfr.DataError(
                f"{where}: float values must lie in [0, 1] (scaled by 255); found {lo:g} .. {hi:g}. Save uint8 "
                "pixels, or divide by 255"
            )
        return np.round(array * 255).astype(np.uint8)
    raise tfr.DataError(f"{where}: dtype {array.dtype} is not pixels (uint8, another integer type, or float in [0, 1])")


def _load_array(path: str, key: str | None):
    """The array of a .npy file, or of a .npz file's entry `key` (or its only entry)."""
    try:
        if path.lower().endswith(".npy"):
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys())
            if key is None and len(names) != 1:
                raise tfr.DataError(f"{path}: holds arrays {names}; choose one with --key")
            name = key if key is not None else names[0]
            if name not in names:
                raise tfr.DataError(f"{path}: has no array {name!r}; it holds {names}")
            return z[name]
    except tfr.DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise tfr.DataError(f"{path}: not a readable {os.path.splitext(path)[1]} array ({e})") from None


def _array_clips(path: str, layout: str, key: str | None):
    array = _load_array(path, key)
    if array.ndim not in (4, 5):
        raise tfr.DataError(
            f"{path}: shape {array.shape} is not {layout} or {layout}C (4 or 5 dimensions: videos, frames, height, "
            "width[, channels] in the order --layout gives)"
        )
    if layout == "TNHW":
        array = np.swapaxes(array, 0, 1)
    stem = os.path.splitext(os.path.basename(path))[0]
    for n in range(array.shape[0]):
        video = np.asarray(array[n])
        video = video[..., None] if video.ndim == 3 else video
        yield Clip(_as_uint8(video, f"{path} (video {n})"), path, f"{stem}-{n:06d}")


def _stack(frames, where):
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise tfr.DataError(f"{where}: its frames differ in size ({sorted(shapes)})")
    return np.stack(frames)


def _gif_clip(path: str) -> np.ndarray:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            frames, durations = [], []
            for f in ImageSequence.Iterator(image):
                frames.append(np.asarray(f.convert("RGB")))
                durations.append(int(f.info.get("duration") or 0))
    except (OSError, UnidentifiedImageError) as e:
        raise tfr.DataError(f"{path}: not a readable GIF ({e})") from None
    # GIF writers (Pillow among them) store a run of identical frames as one frame shown longer. Frames are read
    # back at the GIF's most common frame duration: a frame shown k times as long counts k times.
    if all(d > 0 for d in durations):
        values, counts = np.unique(durations, return_counts=True)
        base = values[np.argmax(counts)]
        repeats = [max(1, round(d / base)) for d in durations]
        frames = [f for f, k in zip(frames, repeats, strict=True) for _ in range(k)]
    return _stack(frames, path)


def _video_clip(path: str) -> np.ndarray:
    try:
        import av
    except ImportError:
        raise tfr.DataError(f"{path}: reading MP4/WebM/MOV needs PyAV (pip install av)") from None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise tfr.DataError(f"{path}: has no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    except tfr.DataError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise tfr.DataError(f"{path}: not a readable video ({e})") from None
    if not frames:
        raise tfr.DataError(f"{path}: holds no frames")
    return _stack(frames, path)


def _frames_clip(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    frames = []
    for name in (f for f in _listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS)):
        file = os.path.join(path, name)
        try:
            with Image.open(file) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:
            raise tfr.DataError(f"{file}: not a readable image ({e})") from None
    return _stack(frames, path)


def read_clips(sources, layout: str = "NTHW", key: str | None = None):
    """Every clip of `sources` (`discover`), in order, as `Clip`s (frames uint8 `[T, H, W, 1 or 3]`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}. Received: {layout!r}")
    readers = {"gif": _gif_clip, "video": _video_clip, "frames": _frames_clip}
    for path, kind in discover(sources):
        if kind == "array":
            yield from _array_clips(path, layout, key)
        else:
            name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
            yield Clip(readers[kind](path), path, name)


# ---------------------------------------------------------------------------------------------------------------------
# Shaping clips into sequences
# ---------------------------------------------------------------------------------------------------------------------


def _is_grey(frames: np.ndarray) -> bool:
    return frames.shape[-1] == 1 or bool(np.all(frames[..., :1] == frames[..., 1:]))


def to_channels(frames: np.ndarray, channels: int, where: str) -> np.ndarray:
    """`[T, H, W, C]` with C in {1, 3, 4} -> `channels` (1 or 3): alpha dropped, grey repeated, RGB to grey only when
    the frames are grey already (R = G = B); a colour clip asked to be grey is a DataError naming `where`."""
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    if frames.shape[-1] not in (1, 3):
        raise tfr.DataError(f"{where}: {frames.shape[-1]} channels per pixel; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    if frames.shape[-1] == channels:
        return frames
    if channels == 3:
        return np.repeat(frames, 3, axis=-1)
    if not _is_grey(frames):
        raise tfr.DataError(f"{where}: has colour, but the conversion writes grey frames; pass --channels 3")
    return frames[..., :1]


def fit_frames(frames: np.ndarray, height: int, width: int, fit: str) -> np.ndarray:
    """Frames `[T, H, W, C]` at `height` x `width`: "resize" scales each axis (the aspect ratio may change), "crop"
    first cuts the largest centred window of the target's aspect ratio, then scales (area averaging when shrinking,
    bilinear when enlarging, antialiased)."""
    import tensorflow as tf

    t, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    if fit == "crop":
        if h * width > w * height:  # too tall: keep the centred rows
            keep = max(1, round(w * height / width))
            top = (h - keep) // 2
            frames = frames[:, top : top + keep]
        else:
            keep = max(1, round(h * width / height))
            left = (w - keep) // 2
            frames = frames[:, :, left : left + keep]
    small = tf.image.resize(tf.cast(frames, tf.float32), [height, width], method="area" if h >= height else "bilinear")
    return np.asarray(tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8))


def cut(length: int, frames: int | None) -> list[tuple[int, int]]:
    """(start, end) of the sequences a clip of `length` frames is cut into: consecutive `frames`-frame pieces (the
    remainder dropped), or the whole clip."""
    if not frames:
        return [(0, length)]
    return [(s, s + frames) for s in range(0, length - frames + 1, frames)]


class SideVectors:
    """Per-frame vectors (actions or states) for the clips, from one array or a folder of per-clip arrays."""

    def __init__(self, path: str, what: str, layout: str):
        self.path, self.what, self.layout = path, what, layout
        self.folder = os.path.isdir(path)
        self.array = None
        if not self.folder:
            if not os.path.exists(path):
                raise tfr.DataError(f"{path}: no such {what} file or folder")
            array = np.asarray(_load_array(path, None), np.float64)
            if array.ndim != 3:
                raise tfr.DataError(
                    f"{path}: {what} must be [N, T, dim] ([T, N, dim] with --layout TNHW); got shape {array.shape}"
                )
            self.array = np.swapaxes(array, 0, 1) if layout == "TNHW" else array
        self.dim = None
        self.used = 0

    def for_clip(self, index: int, clip: Clip) -> np.ndarray:
        if self.folder:
            file = os.path.join(self.path, clip.name + ".npy")
            if not os.path.exists(file):
                raise tfr.DataError(f"{file}: missing ({self.what} of {clip.source})")
            vectors = np.asarray(_load_array(file, None), np.float64)
            where = file
        else:
            if index >= len(self.array):
                raise tfr.DataError(
                    f"{self.path}: {self.what} for {len(self.array)} videos, but the sources hold more (video "
                    f"{index}, {clip.source})"
                )
            vectors, where = self.array[index], f"{self.path} (video {index})"
        self.used = index + 1
        if vectors.ndim != 2 or len(vectors) != len(clip.frames):
            raise tfr.DataError(
                f"{where}: {self.what} must be [T={len(clip.frames)}, dim], one vector per frame of {clip.source}; "
                f"got shape {vectors.shape}"
            )
        if not np.all(np.isfinite(vectors)):
            raise tfr.DataError(f"{where}: {self.what} hold NaN or Inf")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise tfr.DataError(f"{where}: {self.what} of size {vectors.shape[1]}; earlier clips had {self.dim}")
        self.dim = vectors.shape[1]
        return vectors.astype(np.float32)

    def check_all_used(self):
        if not self.folder and self.used != len(self.array):
            raise tfr.DataError(f"{self.path}: {self.what} for {len(self.array)} videos; the sources hold {self.used}")


# ---------------------------------------------------------------------------------------------------------------------
# Writing a split
# ---------------------------------------------------------------------------------------------------------------------


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


class SplitWriter:
    """Writes a split's records round robin into `num_shards` files of a temporary folder inside `out`; `commit`
    moves the non-empty ones into place as `SPLIT-0000i-of-0000K.tfrecord`, removes the split's older shards and
    writes `SPLIT.json` last. `abort` (or an exception inside `with`) removes the temporary folder only."""

    def __init__(self, out: str, split: str, num_shards: int):
        import tensorflow as tf

        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1. Received: {num_shards}")
        if not re.fullmatch(r"[A-Za-z0-9_.]+", split) or split.startswith("."):
            raise ValueError(f"split must be a plain name (letters, digits, _ and .). Received: {split!r}")
        os.makedirs(out, exist_ok=True)
        self.out, self.split = out, split
        self.tmp = os.path.join(out, f".{split}.incomplete-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self._paths = [os.path.join(self.tmp, f"shard-{i:05d}") for i in range(num_shards)]
        self._writers = [tf.io.TFRecordWriter(p) for p in self._paths]
        self.count = 0

    def write(self, serialized: bytes):
        self._writers[self.count % len(self._writers)].write(serialized)
        self.count += 1

    def _close(self):
        for w in self._writers:
            w.close()
        self._writers = []

    def commit(self, metadata: dict) -> list[str]:
        self._close()
        if self.count == 0:
            self.abort()
            raise tfr.DataError("the sources hold no sequences")
        k = min(len(self._paths), self.count)
        names = [shard_name(self.split, i, k) for i in range(k)]
        for i, name in enumerate(names):
            os.replace(self._paths[i], os.path.join(self.out, name))
        for old in os.listdir(self.out):
            if re.fullmatch(rf"{re.escape(self.split)}-\d{{5}}-of-\d{{5}}\.tfrecord", old) and old not in names:
                os.remove(os.path.join(self.out, old))
        meta_tmp = os.path.join(self.tmp, "metadata.json")
        with open(meta_tmp, "w") as f:
            json.dump({**metadata, "count": self.count, "files": names}, f, indent=2)
        os.replace(meta_tmp, metadata_path(self.out, self.split))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return [os.path.join(self.out, n) for n in names]

    def abort(self):
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()


def metadata_path(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"{split}.json")


def convert(
    sources,
    out: str,
    split: str,
    layout: str = "NTHW",
    key: str | None = None,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    fit: str = "resize",
    channels: int | None = None,
    actions: str | None = None,
    states: str | None = None,
    num_shards: int = 8,
    progress: bool = True,
) -> dict:
    """Converts `sources` to split `split` of `out` (see the module docstring); returns the split's metadata."""
    from tqdm import tqdm

    if (height is None) != (width is None):
        raise ValueError("--height and --width go together")
    if fit not in ("resize", "crop"):
        raise ValueError(f"fit must be 'resize' or 'crop'. Received: {fit!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: {channels}")
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1. Received: {frames}")
    discover(sources)  # a missing or unknown source fails before anything is written
    sides = {n: SideVectors(p, n, layout) for n, p in (("actions", actions), ("states", states)) if p}
    shape, lengths, first = None, [], None
    bar = tqdm(desc=f"videos -> {split}", unit="clip", disable=not progress)
    with SplitWriter(out, split, num_shards) as writer:
        for index, clip in enumerate(read_clips(sources, layout, key)):
            video = clip.frames
            if channels is None and shape is None:
                channels = 1 if _is_grey(video) else 3
            video = to_channels(video, channels, clip.source)
            if height is not None:
                video = fit_frames(video, height, width, fit)
            if shape is None:
                shape, first = video.shape[1:], clip.source
            elif video.shape[1:] != shape:
                raise tfr.DataError(
                    f"{clip.source}: frames of {video.shape[1]}x{video.shape[2]}, but {first} has "
                    f"{shape[0]}x{shape[1]}; pass --height and --width to resize (or crop) them all"
                )
            if frames and len(video) < frames:
                raise tfr.DataError(f"{clip.source}: {len(video)} frames, fewer than --frames {frames}")
            vectors = {n: side.for_clip(index, clip) for n, side in sides.items()}
            for s, e in cut(len(video), frames):
                writer.write(
                    tfr.encode_video_example(
                        video[s:e],
                        vectors["actions"][s:e] if "actions" in vectors else None,
                        vectors["states"][s:e] if "states" in vectors else None,
                    )
                )
                lengths.append(e - s)
            bar.update(1)
        for side in sides.values():
            side.check_all_used()
        bar.close()
        metadata = {
            "format": FORMAT,
            "split": split,
            "height": int(shape[0]),
            "width": int(shape[1]),
            "channels": int(shape[2]),
            "frames": int(min(lengths)),
            "max_frames": int(max(lengths)),
            "action_dim": int(sides["actions"].dim) if "actions" in sides else 0,
            "state_dim": int(sides["states"].dim) if "states" in sides else 0,
            "sources": [os.path.abspath(s) for s in sources],
        }
        writer.commit(metadata)
    return read_metadata(out, split)


# ---------------------------------------------------------------------------------------------------------------------
# Reading a converted directory
# ---------------------------------------------------------------------------------------------------------------------


def read_metadata(data_dir: str, split: str) -> dict:
    """A split's metadata; a DataError naming the file, or the splits there are, when it is missing or wrong."""
    path = metadata_path(data_dir, split)
    if not os.path.exists(path):
        have = sorted(f[:-5] for f in os.listdir(data_dir) if f.endswith(".json")) if os.path.isdir(data_dir) else []
        raise tfr.DataError(
            f"{data_dir or '(no data_dir)'}: no split {split!r} ({path} is missing; splits there: {have or 'none'}). "
            f"Write it with: python -m datasets.videos SRC... --out {data_dir or 'DIR'} --split {split}"
        )
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise tfr.DataError(f"{path}: not a readable metadata file ({e})") from None
    if meta.get("format") != FORMAT:
        raise tfr.DataError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def data_info(data_dir: str) -> dict:
    """The frame shape, frame count and vector sizes of a converted directory, from the first of its splits
    train, validation, test (in that order) that exists; the others must agree."""
    if not data_dir or not os.path.isdir(data_dir):
        raise tfr.DataError(
            f"data_dir={data_dir!r} is not a folder; convert videos first: python -m datasets.videos SRC... "
            "--out DIR --split train (then validation, test) and pass --data_dir DIR"
        )
    metas = {s: read_metadata(data_dir, s) for s in SPLITS if os.path.exists(metadata_path(data_dir, s))}
    if not metas:
        read_metadata(data_dir, "train")  # raises, naming what is there
    keys = ("height", "width", "channels", "action_dim", "state_dim")
    (first, ref), *rest = metas.items()
    for split, meta in rest:
        differ = [f"{k} {ref[k]} vs {meta[k]}" for k in keys if meta[k] != ref[k]]
        if differ:
            raise tfr.DataError(f"{data_dir}: splits {first} and {split} differ ({'; '.join(differ)})")
    return {k: ref[k] for k in keys} | {"frames": min(m["frames"] for m in metas.values())}


def split_files(data_dir: str, split: str, need_frames: int) -> tuple[list[str], dict]:
    """The shard files of a split (from its metadata) and the metadata; a DataError if its sequences are shorter
    than `need_frames` or a shard is missing."""
    meta = read_metadata(data_dir, split)
    if meta["frames"] < need_frames:
        raise tfr.DataError(
            f"{metadata_path(data_dir, split)}: its shortest sequences have {meta['frames']} frames; the config "
            f"reads {need_frames} (set --num_frames / --eval_num_frames, or convert with a larger --frames)"
        )
    files = [os.path.join(data_dir, f) for f in meta["files"]]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise tfr.DataError(f"{data_dir}: split {split!r} lacks shard files {missing}; convert it again")
    return files, meta


def _decoder(meta, action_dim, state_dim):
    import tensorflow as tf

    frame_shape = (meta["height"], meta["width"], meta["channels"])

    def decode(record, filename):
        example = tfr.decode_video_example(record, filename, action_dim, state_dim, frame_shape)
        example["video"] = tf.ensure_shape(example["video"], [None, *frame_shape])
        return example

    return decode


def _check_vectors(meta, data_dir, split, action_dim, state_dim):
    for what, want in (("action_dim", action_dim), ("state_dim", state_dim)):
        if want and meta[what] != want:
            raise tfr.DataError(
                f"{metadata_path(data_dir, split)}: {what}={meta[what]} in the data; the config reads {want}"
            )


def train_dataset(
    data_dir, seed, num_frames, start=0, shard_index=0, num_shards=1, action_dim=0, state_dim=0, split="train"
):
    """Infinite shuffled training examples: random `num_frames`-frame windows of the split's sequences, a pure
    function of (seed, position) that resumes exactly at any position (`tfrecord.shuffled_windows`)."""
    files, meta = split_files(data_dir, split, num_frames)
    _check_vectors(meta, data_dir, split, action_dim, state_dim)
    decode = _decoder(meta, action_dim, state_dim)
    where = f"{data_dir} split {split!r}"
    return tfr.shuffled_windows(files, decode, seed, num_frames, start, shard_index, num_shards, where=where)


def eval_dataset(data_dir, split, num_frames, action_dim=0, state_dim=0):
    """A held-out split in file order: the first `num_frames` frames of every sequence (and their vectors)."""
    import tensorflow as tf

    files, meta = split_files(data_dir, split, num_frames)
    _check_vectors(meta, data_dir, split, action_dim, state_dim)
    decode = _decoder(meta, action_dim, state_dim)
    # The conversion wrote sequence n to shard n % K: reading the shards in turn, one record each, gives the
    # sequences in the conversion's order (the first N of a split are the first N converted).
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f).map(lambda r: (f, r)),
        cycle_length=len(files),
        block_length=1,
    )
    ds = ds.map(lambda f, r: decode(r, f), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.map(lambda ex: {k: v[:num_frames] for k, v in ex.items()})


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m datasets.videos",
        description="Convert your videos (.npy/.npz arrays, GIF/MP4/WebM files, frame folders) to a VPN dataset "
        "directory (train.py --config videos --data_dir OUT).",
    )
    parser.add_argument(
        "sources", nargs="+", metavar="SRC", help="arrays, video files, frame folders, or folders of them"
    )
    parser.add_argument("--out", required=True, help="the dataset directory (created)")
    parser.add_argument("--split", required=True, help="train, validation or test (the splits training reads)")
    parser.add_argument("--layout", default="NTHW", choices=LAYOUTS, help="axis order of array sources")
    parser.add_argument("--key", default=None, help="the array of a .npz file to read (default: its only one)")
    parser.add_argument("--frames", type=int, default=None, help="cut clips into sequences of this many frames")
    parser.add_argument("--height", type=int, default=None, help="frame height to write (with --width)")
    parser.add_argument("--width", type=int, default=None, help="frame width to write (with --height)")
    parser.add_argument(
        "--fit",
        default="resize",
        choices=("resize", "crop"),
        help="resize: scale each axis; crop: centre-crop to the target's aspect ratio first",
    )
    parser.add_argument(
        "--channels",
        type=int,
        default=None,
        choices=(1, 3),
        help="1 (grey) or 3 (RGB); default: grey if the first clip is grey",
    )
    parser.add_argument(
        "--actions", default=None, help="per-frame actions: an [N, T, dim] array, or a folder of NAME.npy"
    )
    parser.add_argument("--states", default=None, help="per-frame states: as --actions")
    parser.add_argument(
        "--num_shards", type=int, default=8, help="files to spread the split over (at most one per sequence)"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        meta = convert(
            args.sources,
            args.out,
            args.split,
            layout=args.layout,
            key=args.key,
            frames=args.frames,
            height=args.height,
            width=args.width,
            fit=args.fit,
            channels=args.channels,
            actions=args.actions,
            states=args.states,
            num_shards=args.num_shards,
            progress=not args.no_progress,
        )
    except (tfr.DataError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(
        f"{args.split}: {meta['count']} sequences of {meta['frames']}"
        + (f"-{meta['max_frames']}" if meta["max_frames"] != meta["frames"] else "")
        + f" frames, {meta['height']}x{meta['width']}x{meta['channels']}"
        + (f", actions {meta['action_dim']}" if meta["action_dim"] else "")
        + (f", states {meta['state_dim']}" if meta["state_dim"] else "")
        + f" -> {os.path.join(args.out, args.split)}-*.tfrecord, {metadata_path(args.out, args.split)}"
    )


if __name__ == "__main__":
    main()
