"""MNIST from the official idx files shipped in `datasets/mnist/` (or any directory holding the same four files).

Creators: Yann LeCun, Corinna Cortes, Christopher J.C. Burges. License: CC BY-SA 3.0.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os

import numpy as np

from . import ROOT

DEFAULT_DIR = os.path.join(ROOT, "mnist")

FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

# sha256 of the decompressed official files (the content, whatever the compression).
CONTENT_SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

SIZES = {"train": 60_000, "test": 10_000}


class MNISTError(ValueError):
    """A missing, corrupt or malformed MNIST file."""


def _read(path: str) -> bytes:
    """The decompressed bytes of `path` (.gz) or `path` without the suffix, whichever exists."""
    for candidate in (path + ".gz", path):
        if os.path.exists(candidate):
            try:
                if candidate.endswith(".gz"):
                    with gzip.open(candidate, "rb") as f:
                        return f.read()
                with open(candidate, "rb") as f:
                    return f.read()
            except (OSError, EOFError) as e:
                raise MNISTError(f"MNIST file {candidate} cannot be read ({e}); it is truncated or not gzip.") from e
    raise MNISTError(
        f"MNIST file {path}.gz (or {os.path.basename(path)}) is missing. The repository ships it in {DEFAULT_DIR}; "
        "pass data_dir= pointing to a directory with the four official idx files."
    )


def _parse_idx(data: bytes, path: str, expected_dims: int) -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise MNISTError(f"{path}: not an idx file of unsigned bytes (bad magic {data[:4]!r})")
    dims = data[3]
    if dims != expected_dims:
        raise MNISTError(f"{path}: expected {expected_dims} dimensions, found {dims}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    if len(data) - offset != int(np.prod(shape)):
        raise MNISTError(f"{path}: header says shape {shape} but holds {len(data) - offset} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


@functools.lru_cache(maxsize=8)
def _load_cached(split: str, data_dir: str, verify: bool):
    arrays = []
    for kind, dims in (("images", 3), ("labels", 1)):
        name = FILES[(split, kind)]
        path = os.path.join(data_dir, name)
        data = _read(path)
        if verify:
            digest = hashlib.sha256(data).hexdigest()
            if digest != CONTENT_SHA256[name]:
                raise MNISTError(
                    f"MNIST file {path}(.gz) is corrupt: sha256 of its content is {digest}, "
                    f"expected {CONTENT_SHA256[name]} (the official file)."
                )
        arrays.append(_parse_idx(data, path, dims))
    images, labels = arrays
    if len(images) != len(labels):
        raise MNISTError(f"MNIST {split}: {len(images)} images but {len(labels)} labels in {data_dir}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load(split: str, data_dir: str | None = None, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images uint8 `[N, 28, 28]` and labels uint8 `[N]` of `split` ("train": 60,000; "test": 10,000).

    Args:
        split: "train" or "test".
        data_dir: directory with the idx files (.gz or not); default: the copy shipped in `datasets/mnist/`.
        verify: check the sha256 of the decompressed content against the official files.

    Raises:
        MNISTError (a ValueError): a missing, truncated, corrupt or malformed file, naming it.
    """
    if split not in SIZES:
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    return _load_cached(split, os.path.abspath(data_dir or DEFAULT_DIR), verify)
