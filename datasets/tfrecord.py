"""The shared TFRecord format for uint8 videos with optional per-frame actions and states.

One `tf.train.Example` per video:
    video/encoded  bytes    raw uint8 pixels, C order, [T, H, W, C]
    video/shape    int64[4] T, H, W, C
    actions        float[]  T * action_dim values (optional), row-major [T, action_dim]
    states         float[]  T * state_dim values (optional)
Files are GZIP-compressed TFRecords, sharded as PREFIX-00000-of-00010.tfrecord.gz.

Decoding (`decode_video_example`) is separate from turning videos into model inputs (each dataset's parser), as in
tensorflow/models. Bad records raise a `DataError` naming the file and the feature; `skip_bad=True` drops them and
counts them instead.

This module imports no other module of `datasets`: every dataset builds on it.
"""

from __future__ import annotations

import glob
import os
import re
import struct
import threading

import numpy as np
import tensorflow as tf

from vpn_tf.rng import ALG

COMPRESSION = "GZIP"


class DataError(ValueError):
    """A record or file that cannot be turned into a correct video; the message names the file and the feature."""


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------


def encode_video_example(video: np.ndarray, actions=None, states=None) -> bytes:
    """Serialises one video (uint8 `[T, H, W, C]`) and its optional `[T, dim]` float vectors."""
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4:
        raise DataError(f"video must be uint8 [T, H, W, C]. Received: dtype={video.dtype}, shape={video.shape}")
    feature = {
        "video/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(video).tobytes()])),
        "video/shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(video.shape))),
    }
    for name, vec in (("actions", actions), ("states", states)):
        if vec is None:
            continue
        vec = np.asarray(vec, np.float32)
        if vec.ndim != 2 or vec.shape[0] != video.shape[0]:
            raise DataError(f"{name} must be [T={video.shape[0]}, dim]. Received: shape={vec.shape}")
        if not np.all(np.isfinite(vec)):
            raise DataError(f"{name} must be finite")
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=vec.reshape(-1).tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def shard_paths(out_dir: str, prefix: str, num_shards: int) -> list[str]:
    return [os.path.join(out_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord.gz") for i in range(num_shards)]


class ShardedVideoWriter:
    """Writes examples in contiguous blocks: with n examples and k shards, shard i holds examples [i*n//k, (i+1)*n//k).

    Files are first written under a temporary name (one per process) and renamed when complete, so an interrupted
    run never leaves a truncated shard that looks finished, files already present are not touched until the new ones
    are whole, and processes writing the same files at once (e.g. two evaluations building the Moving MNIST test
    cache) do not disturb each other.

    Args:
        out_dir: directory (created).
        prefix: file name prefix.
        num_examples: total examples that will be written (fixes the shard boundaries, hence the bytes).
        num_shards: number of files.
    """

    def __init__(self, out_dir: str, prefix: str, num_examples: int, num_shards: int):
        if num_shards < 1 or num_examples < num_shards:
            raise ValueError(f"need 1 <= num_shards <= num_examples. Received: {num_shards}, {num_examples}")
        os.makedirs(out_dir, exist_ok=True)
        self.paths = shard_paths(out_dir, prefix, num_shards)
        self.bounds = [num_examples * i // num_shards for i in range(num_shards + 1)]
        self.num_examples = num_examples
        self._written = 0
        self._shard = -1
        self._writer = None
        self._options = tf.io.TFRecordOptions(compression_type=COMPRESSION)

    def _tmp(self, path):
        # Per process: two processes building the same (deterministic) files must not write into one temporary.
        return f"{path}.incomplete-{os.getpid()}"

    def write(self, serialized: bytes):
        if self._written >= self.num_examples:
            raise ValueError(f"more than the announced {self.num_examples} examples")
        while self._written >= self.bounds[self._shard + 1]:
            self._finish_shard()
            self._shard += 1
            self._writer = tf.io.TFRecordWriter(self._tmp(self.paths[self._shard]), self._options)
        self._writer.write(serialized)
        self._written += 1

    def _finish_shard(self):
        if self._writer is not None:
            self._writer.close()
            os.replace(self._tmp(self.paths[self._shard]), self.paths[self._shard])
            self._writer = None

    def close(self):
        if self._written != self.num_examples:
            if self._writer is not None:
                self._writer.close()
                os.remove(self._tmp(self.paths[self._shard]))
            raise ValueError(f"wrote {self._written} of the announced {self.num_examples} examples")
        self._finish_shard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()
            os.remove(self._tmp(self.paths[self._shard]))
            self._writer = None


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------


def _assert(ok, message, filename):
    """A graph assertion whose error names the file (the message is static, the file name is data)."""
    return tf.debugging.Assert(ok, [message, "in file", filename], summarize=1)


def _checked(checks, filename, skip_bad, build):
    """Builds the decoded example after `checks` [(bool tensor, message)] pass.

    Without `skip_bad`, a failing check raises InvalidArgumentError whose message names the feature and the file
    (`DataError` when iterated through `checked_iterator`). With `skip_bad`, returns (example, ok): `build(ok)` must
    then produce a well-formed placeholder when ok is False, which the caller filters out and counts.
    """
    ok = tf.reduce_all(tf.stack([c for c, _ in checks]))
    if skip_bad:
        return build(ok), ok
    with tf.control_dependencies([_assert(c, m, filename) for c, m in checks]):
        return build(tf.constant(True))


def decode_video_example(serialized, filename, action_dim=0, state_dim=0, frame_shape=None, skip_bad=False):
    """Parses one record of the shared format into {"video": uint8 [T, H, W, C], "actions", "states"}.

    Args:
        serialized: a scalar string tensor (one record).
        filename: a scalar string tensor naming the record's file (for error messages).
        action_dim, state_dim: expected vector sizes (0: not read).
        frame_shape: optional expected (H, W, C) of every frame.
        skip_bad: return (example, ok) instead of raising.
    """
    spec = {
        "video/encoded": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "video/shape": tf.io.VarLenFeature(tf.int64),
    }
    dims = {"actions": action_dim, "states": state_dim}
    for name, dim in dims.items():
        if dim:
            spec[name] = tf.io.VarLenFeature(tf.float32)
    ex = tf.io.parse_single_example(serialized, spec)
    shape = tf.sparse.to_dense(ex["video/shape"])
    has_shape = tf.size(shape) == 4
    shape4 = tf.cond(has_shape, lambda: shape, lambda: tf.constant([0, 1, 1, 1], tf.int64))
    raw = tf.io.decode_raw(ex["video/encoded"], tf.uint8)
    checks = [
        (has_shape, "feature video/shape: missing or not 4 values [T, H, W, C]"),
        (tf.size(raw) > 0, "feature video/encoded: missing or empty"),
        (tf.cast(tf.size(raw), tf.int64) == tf.reduce_prod(shape4), "feature video/encoded: size != video/shape"),
    ]
    if frame_shape is not None:
        want = tf.constant(list(frame_shape), tf.int64)
        checks.append((tf.reduce_all(shape4[1:] == want), f"feature video/shape: frames are not {tuple(frame_shape)}"))
    vectors = {}
    for name, dim in dims.items():
        if dim:
            v = tf.sparse.to_dense(ex[name])
            checks.append(
                (tf.cast(tf.size(v), tf.int64) == shape4[0] * dim, f"feature {name}: missing or not [T, {dim}]")
            )
            checks.append((tf.reduce_all(tf.math.is_finite(v)), f"feature {name}: NaN or Inf"))
            vectors[name] = v

    def build(ok):
        final = tf.where(ok, shape4, tf.constant([0, 1, 1, 1], tf.int64))
        n = tf.cast(tf.reduce_prod(final), tf.int32)
        out = {"video": tf.reshape(raw[:n], final)}
        for name, v in vectors.items():
            out[name] = tf.reshape(v[: tf.cast(final[0], tf.int32) * dims[name]], [-1, dims[name]])
        return out

    return _checked(checks, filename, skip_bad, build)


def list_files(pattern_or_files) -> list[str]:
    """Sorted files matching a glob pattern (or a list of patterns/files); a DataError if none match."""
    patterns = [pattern_or_files] if isinstance(pattern_or_files, str) else list(pattern_or_files)
    files = sorted({f for p in patterns for f in glob.glob(p)})
    if not files:
        raise DataError(f"No files match {patterns}")
    return files


def records_with_filenames(files, compression=COMPRESSION):
    """(filename, serialized record) pairs from `files`, in file order (decoding downstream runs in parallel)."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    return ds.flat_map(lambda f: tf.data.TFRecordDataset(f, compression_type=compression).map(lambda r: (f, r)))


class RecordIndex:
    """Where every record of uncompressed TFRecord files lies, for reading record k directly (no scan before it).

    Building the index reads each record's 12-byte header and seeks past its data: the files' bytes are not read, so
    even the full Robotic Pushing train split indexes in moments. A header that points past the end of its file
    (a truncated file) raises `DataError` naming the file and the byte. Reads use `os.pread` on local files (thread
    safe, so a parallel `tf.data` map can read concurrently) and `tf.io.gfile` elsewhere (e.g. gs://).
    """

    def __init__(self, files):
        self.files = list(files)
        file_ids, offsets, lengths = [], [], []
        for i, path in enumerate(self.files):
            with tf.io.gfile.GFile(path, "rb") as f:
                size, pos = f.size(), 0
                while pos < size:
                    header = f.read(12)
                    if len(header) < 12:
                        raise DataError(f"{path}: truncated record header at byte {pos} (file size {size})")
                    (length,) = struct.unpack("<Q", header[:8])
                    end = pos + 12 + length + 4
                    if end > size:
                        raise DataError(
                            f"{path}: the record at byte {pos} claims {length} bytes, past the end of the file "
                            f"({size} bytes): truncated or not an uncompressed TFRecord file"
                        )
                    file_ids.append(i)
                    offsets.append(pos + 12)
                    lengths.append(length)
                    f.seek(end)
                    pos = end
        self.file_ids = np.asarray(file_ids, np.int64)
        self.offsets = np.asarray(offsets, np.int64)
        self.lengths = np.asarray(lengths, np.int64)
        self._handles = {}
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.offsets)

    def read(self, k: int) -> bytes:
        """The serialized record k (in file order, then record order)."""
        path = self.files[int(self.file_ids[k])]
        offset, length = int(self.offsets[k]), int(self.lengths[k])
        with self._lock:
            handle = self._handles.get(path)
            if handle is None:
                local = "://" not in path
                handle = self._handles[path] = os.open(path, os.O_RDONLY) if local else tf.io.gfile.GFile(path, "rb")
        if isinstance(handle, int):
            return os.pread(handle, length, offset)
        with self._lock:  # a GFile has one position
            handle.seek(offset)
            return handle.read(length)

    def read_op(self, k):
        """`read` as a graph op: scalar int64 record number -> scalar tf.string."""
        data = tf.numpy_function(lambda i: np.asarray(self.read(int(i)), dtype=object), [k], tf.string, stateful=False)
        data.set_shape([])
        return data

    def __del__(self):
        for handle in getattr(self, "_handles", {}).values():
            if isinstance(handle, int):
                os.close(handle)


class SkipCounter:
    """Counts records dropped by `skip_bad` readers (readable while or after iterating)."""

    def __init__(self):
        self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_records")

    @property
    def count(self) -> int:
        return int(self.variable.numpy())


def filter_bad(ds, counter: SkipCounter | None):
    """Drops (example, ok=False) pairs, counting them; yields the examples."""

    def keep(example, ok):
        if counter is not None:
            with tf.control_dependencies([counter.variable.assign_add(tf.cast(tf.logical_not(ok), tf.int64))]):
                return tf.identity(ok)
        return ok

    return ds.filter(keep).map(lambda example, ok: example)


def read_videos(
    pattern_or_files,
    action_dim=0,
    state_dim=0,
    frame_shape=None,
    skip_bad=False,
    counter: SkipCounter | None = None,
    compression=COMPRESSION,
):
    """A dataset of decoded videos from files in the shared format, in file order.

    Bad records raise (see `checked_iterator` for a DataError naming the file), or with `skip_bad` are dropped and
    counted in `counter`; truncated files are then read up to the damage (`ignore_errors`).
    """
    files = list_files(pattern_or_files)
    ds = records_with_filenames(files, compression)
    if skip_bad:
        ds = ds.ignore_errors(log_warning=True)
        ds = ds.map(
            lambda f, r: decode_video_example(r, f, action_dim, state_dim, frame_shape, skip_bad=True),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return filter_bad(ds, counter)
    return ds.map(
        lambda f, r: decode_video_example(r, f, action_dim, state_dim, frame_shape), num_parallel_calls=tf.data.AUTOTUNE
    )


def checked_iterator(ds, files, make_dataset=None, compression=COMPRESSION):
    """Iterates `ds`, turning TensorFlow read and decode errors into a `DataError` naming the file and feature.

    Errors raised by this module's assertions already name both. Others (a truncated or corrupted record, image bytes
    a decoder rejects) do not say which file they came from: then each file is read alone, with `make_dataset([file])`
    (default: its raw records), to find the first one that fails, and that file is named with the original error.
    """
    make_dataset = make_dataset or (lambda fs: tf.data.TFRecordDataset(fs, compression_type=compression))
    it = iter(ds)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            if "in file" in e.message:
                raise DataError(_assertion_text(e.message)) from None
            bad, err = _locate(files, make_dataset)
            where = bad or "one of " + ", ".join(files)
            kind = "truncated or corrupted record" if isinstance(err or e, tf.errors.DataLossError) else "bad record"
            raise DataError(f"{where}: {kind} ({_clean((err or e).message)})") from None


def _locate(files, make_dataset):
    for f in files:
        try:
            for _ in make_dataset([f]):
                pass
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            return f, e
    return None, None


def _assertion_text(message: str) -> str:
    """'feature X: problem in file F' from a tf.debugging.Assert message."""
    m = re.search(r"\[(feature .*?)\] \[in file\] \[(.*?)\]", message)
    if m:
        return f"{m.group(2)}: {m.group(1)}"
    return _clean(message)


def _clean(message: str) -> str:
    """A TensorFlow error message without its function-node prefix and op suffix."""
    message = re.sub(r"\{\{.*?\}\}\s*", "", message.splitlines()[0])
    return re.sub(r"\s*\[Op:.*$", "", message)


# ---------------------------------------------------------------------------------------------------------------------
# Training streams
# ---------------------------------------------------------------------------------------------------------------------


def random_window(example, length: int, seed):
    """A random window of `length` consecutive frames of `example` (and of its actions and states), from a stateless
    `seed[2]`."""
    total = tf.shape(example["video"])[0]
    start = tf.random.stateless_uniform([], seed, minval=0, maxval=total - length + 1, dtype=tf.int32, alg=ALG)
    return {k: v[start : start + length] for k, v in example.items()}


def shuffled_windows(files, decode, seed: int, length: int, start=0, shard_index=0, num_shards=1, where=""):
    """The infinite training stream of uncompressed record `files`: random `length`-frame windows of every record.

    Input pipeline i of k (`shard_index`, `num_shards`; one per worker or input pipeline of tf.distribute) reads its
    own files: files i, i + k, ... of the sorted list, so no two pipelines read the same bytes. Its stream is a pure
    function of (seed, position): epoch e visits every record of its files once, in the order of a pseudorandom
    permutation of all of them seeded by (seed, i, e) (`tf.random.experimental.index_shuffle`), so consecutive
    examples come from any of its files. Position p maps straight to a record (epoch p // N, slot p % N), read at its
    byte offset (`RecordIndex`): resuming at any position costs nothing, unlike replaying a shuffle buffer. The
    window start of each example comes from a stateless seed folded from (seed, global position).

    Args:
        files: sorted record files.
        decode: (serialized record, filename) -> example dict with "video" `[T, H, W, C]`.
        start: the global stream position (sequences consumed by all pipelines together); pipeline i resumes at
            start // k.
        where: names the data in error messages.
    """
    if len(files) < num_shards:
        raise ValueError(
            f"{num_shards} input pipelines need at least {num_shards} files; {where} has {len(files)}. Use fewer "
            "workers or write the data in more files."
        )
    mine = files[shard_index::num_shards]
    index = RecordIndex(mine)
    n = len(index)
    if n == 0:
        raise DataError(f"{where}: files {mine} hold no records")
    names = tf.constant(mine)
    file_ids = tf.constant(index.file_ids)
    base = tf.constant([seed, 7], tf.int64)
    shard_key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 11], tf.int64), shard_index, alg=ALG)

    def locate(position):
        epoch, slot = position // n, position % n
        epoch_seed = tf.random.experimental.stateless_fold_in(shard_key, epoch, alg=ALG)
        k = tf.random.experimental.index_shuffle(slot, epoch_seed, n - 1)
        return position, tf.gather(names, tf.gather(file_ids, k)), index.read_op(k)

    def window(position, filename, record):
        example = decode(record, filename)
        global_position = position * num_shards + shard_index
        key = tf.random.experimental.stateless_fold_in(base, global_position, alg=ALG)
        return random_window(example, length, key)

    ds = tf.data.Dataset.counter(start // num_shards, dtype=tf.int64)
    ds = ds.map(locate, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.map(window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
