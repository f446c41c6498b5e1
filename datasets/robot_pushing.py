"""Reader for the Robotic Pushing dataset of Finn, Goodfellow & Levine (2016) in its original TFRecord schema.

Each record is one sequence; for every frame i:
    move/{i}/image/encoded                 JPEG bytes (640 x 512 RGB in the real data)
    move/{i}/commanded_pose/vec_pitch_yaw  5 floats: the action (commanded end-effector pose)
    move/{i}/endeffector/vec_pitch_yaw     5 floats: the state (measured end-effector pose)
Frames are preprocessed as in the original code: centre-cropped to a square of side min(height, width), resized
bicubically to 64 x 64 (we then round and clip to uint8: videos at our API boundaries are raw uint8 pixels).

Splits by directory, as distributed: push_train/, push_testseen/, push_testnovel/. The distribution has no validation
directory; as in Finn et al.'s code, validation is the last 5% of the sorted push_train files (and train the rest)
unless a push_val/ directory exists, which is then used as is (our simulator writes one).

Training examples (§6.1): random 12-frame subsequences (2 context + 10 predicted) with their actions and states.
Evaluation: the first 20 frames, actions for all of them, states for the 2 context frames only.
Records are uncompressed TFRecords, as in the original; `datasets/pushing_sim.py` writes the same schema.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from . import tfrecord as tfr

IMAGE_SIZE = 64
VECTOR_DIM = 5
ORIGINAL_SHAPE = (512, 640)  # height, width of the real dataset's frames
SPLIT_DIRS = {
    "train": "push_train",
    "validation": "push_val",
    "test_seen": "push_testseen",
    "test_novel": "push_testnovel",
}
TRAIN_FRACTION = 0.95
COMPRESSION = ""  # the original records are not compressed

IMAGE_KEY = "move/{}/image/encoded"
ACTION_KEY = "move/{}/commanded_pose/vec_pitch_yaw"
STATE_KEY = "move/{}/endeffector/vec_pitch_yaw"


def split_files(data_dir: str, split: str) -> list[str]:
    """The sorted record files of `split` ("train", "validation", "test_seen", "test_novel") under `data_dir`."""
    if split not in SPLIT_DIRS:
        raise ValueError(f"split must be one of {tuple(SPLIT_DIRS)}. Received: split={split!r}")

    def files_in(name):
        d = os.path.join(data_dir, name)
        return sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith(".")) if os.path.isdir(d) else []

    if split in ("train", "validation") and not files_in(SPLIT_DIRS["validation"]):
        train = files_in(SPLIT_DIRS["train"])
        if not train:
            raise tfr.DataError(f"No record files in {os.path.join(data_dir, SPLIT_DIRS['train'])}")
        if len(train) < 2:
            raise tfr.DataError(
                f"{data_dir}: one push_train file cannot be split into train and validation; add a push_val/ directory"
            )
        cut = min(len(train) - 1, max(1, int(np.floor(TRAIN_FRACTION * len(train)))))
        return train[:cut] if split == "train" else train[cut:]
    files = files_in(SPLIT_DIRS[split])
    if not files:
        raise tfr.DataError(f"No record files in {os.path.join(data_dir, SPLIT_DIRS[split])} for split {split!r}")
    return files


# ---------------------------------------------------------------------------------------------------------------------
# Encoding (fixtures, the simulator) and decoding
# ---------------------------------------------------------------------------------------------------------------------


def encode_push_example(frames: np.ndarray, actions: np.ndarray, states: np.ndarray, jpeg_quality: int = 95) -> bytes:
    """A record in the original schema from uint8 frames `[T, H, W, 3]` and float `[T, 5]` actions and states."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise tfr.DataError(f"frames must be uint8 [T, H, W, 3]. Received: {frames.dtype} {frames.shape}")
    t = len(frames)
    for name, v in (("actions", actions), ("states", states)):
        if np.shape(v) != (t, VECTOR_DIM):
            raise tfr.DataError(f"{name} must be [T={t}, {VECTOR_DIM}]. Received: {np.shape(v)}")
    feature = {}
    for i in range(t):
        jpeg = tf.io.encode_jpeg(frames[i], quality=jpeg_quality, chroma_downsampling=False).numpy()
        feature[IMAGE_KEY.format(i)] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))
        feature[ACTION_KEY.format(i)] = tf.train.Feature(float_list=tf.train.FloatList(value=list(actions[i])))
        feature[STATE_KEY.format(i)] = tf.train.Feature(float_list=tf.train.FloatList(value=list(states[i])))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def preprocess_frame(image, size=IMAGE_SIZE):
    """uint8 `[H, W, 3]` -> uint8 `[size, size, 3]`: centre crop to min(H, W), bicubic resize (original code)."""
    shape = tf.shape(image)
    crop = tf.minimum(shape[0], shape[1])
    image = tf.image.resize_with_crop_or_pad(image, crop, crop)
    image = tf.image.resize(tf.cast(image, tf.float32)[None], [size, size], method="bicubic")[0]
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_push_example(serialized, filename, sequence_length: int, image_shape=None, skip_bad: bool = False):
    """One record -> {"video": uint8 [L, 64, 64, 3], "actions": [L, 5], "states": [L, 5]} (first L frames).

    Args:
        serialized, filename: the record and its file (named in errors).
        sequence_length: frames to read; a record with fewer raises naming the first missing feature.
        image_shape: optional (height, width) every JPEG must have, e.g. `ORIGINAL_SHAPE`.
        skip_bad: return (example, ok) instead of raising.
    """
    spec = {}
    for i in range(sequence_length):
        spec[IMAGE_KEY.format(i)] = tf.io.FixedLenFeature([], tf.string, default_value="")
        spec[ACTION_KEY.format(i)] = tf.io.VarLenFeature(tf.float32)
        spec[STATE_KEY.format(i)] = tf.io.VarLenFeature(tf.float32)
    ex = tf.io.parse_single_example(serialized, spec)
    checks, actions, states = [], [], []
    jpegs = tf.stack([ex[IMAGE_KEY.format(i)] for i in range(sequence_length)])
    is_jpeg = tf.io.is_jpeg(jpegs)
    present = tf.strings.length(jpegs) > 0
    # Only decode bytes that look like JPEG, so that skip_bad can drop the record instead of failing the map.
    safe = tf.where(is_jpeg, jpegs, tf.io.encode_jpeg(tf.zeros([1, 1, 3], tf.uint8)))

    def decode(jpeg):
        image = tf.io.decode_jpeg(jpeg, channels=3)
        return preprocess_frame(image), tf.shape(image)[:2]

    # One decode traced once for all frames (a loop over frames in Python would trace 20 copies of it, which made
    # building every pipeline take seconds).
    frames, shapes = tf.map_fn(
        decode,
        safe,
        fn_output_signature=(tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8), tf.TensorSpec([2], tf.int32)),
    )

    def every_frame(ok, problem):
        """One check for all frames, naming the first failing frame's feature (one assertion per frame would
        trace hundreds of them)."""
        names = tf.constant([problem.format(i) for i in range(sequence_length)])
        first_bad = tf.concat([tf.where(~ok)[:, 0], [0]], axis=0)[0]  # (0 when all pass; then unused)
        return tf.reduce_all(ok), tf.gather(names, first_bad)

    checks.append(every_frame(present, f"feature {IMAGE_KEY}: missing"))
    checks.append(every_frame(is_jpeg | ~present, f"feature {IMAGE_KEY}: not JPEG bytes"))  # missing: said above
    if image_shape is not None:
        ok_shape = tf.reduce_all(shapes == tf.constant(list(image_shape)), axis=1) | ~is_jpeg
        checks.append(every_frame(ok_shape, f"feature {IMAGE_KEY}: image is not {tuple(image_shape)} (h, w)"))
    for key, store in ((ACTION_KEY, actions), (STATE_KEY, states)):
        values = [tf.sparse.to_dense(ex[key.format(i)]) for i in range(sequence_length)]
        sizes = tf.stack([tf.size(v) for v in values])
        finite = tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in values])
        checks.append(every_frame(sizes == VECTOR_DIM, f"feature {key}: missing or not {VECTOR_DIM} floats"))
        checks.append(every_frame(finite, f"feature {key}: NaN or Inf"))
        store.extend(tf.pad(v, [[0, tf.maximum(0, VECTOR_DIM - tf.size(v))]])[:VECTOR_DIM] for v in values)

    def build(ok):
        del ok  # placeholders are well-formed either way; the caller drops the bad ones
        return {"video": frames, "actions": tf.stack(actions), "states": tf.stack(states)}

    return tfr._checked(checks, filename, skip_bad, build)


def read(
    data_dir: str,
    split: str,
    sequence_length: int = 20,
    image_shape=None,
    skip_bad: bool = False,
    counter: tfr.SkipCounter | None = None,
    files: list[str] | None = None,
):
    """Full sequences of `split` in file order: {"video" uint8 [L, 64, 64, 3], "actions" [L, 5], "states" [L, 5]}.

    Bad records (missing feature, undecodable image, wrong image size, NaN) raise naming the file and the feature
    when iterated through `iterate`; with `skip_bad`, they are dropped and counted in `counter`.
    """
    files = files or split_files(data_dir, split)
    ds = tfr.records_with_filenames(files, COMPRESSION)
    decode = lambda f, r: decode_push_example(r, f, sequence_length, image_shape, skip_bad)  # noqa: E731
    if skip_bad:
        ds = ds.ignore_errors(log_warning=True).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        return tfr.filter_bad(ds, counter)
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def iterate(ds, files, sequence_length: int = 20, image_shape=None):
    """Iterates a dataset from `read`, raising `DataError` naming the file and feature on bad input."""
    return tfr.checked_iterator(
        ds, files, make_dataset=lambda fs: read(None, None, sequence_length, image_shape, files=fs), compression=""
    )


def random_subsequence(example, length: int, seed):
    """A random window of `length` consecutive frames (with its actions and states), from a stateless `seed[2]`."""
    return tfr.random_window(example, length, seed)


def train_dataset(
    data_dir: str,
    seed: int,
    split: str = "train",
    subsequence_length: int = 12,
    sequence_length: int = 20,
    start: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
):
    """Infinite, shuffled training examples: random `subsequence_length`-frame windows of every sequence (§6.1).

    Input pipeline i of k reads files i, i + k, ... of the sorted split, each epoch in a pseudorandom order, and
    resumes at any position at no cost (`tfrecord.shuffled_windows`). Which examples make a global step therefore
    depends on k, as with any file-sharded input.
    """
    if subsequence_length > sequence_length:
        raise ValueError(f"subsequence_length={subsequence_length} exceeds sequence_length={sequence_length}")
    files = split_files(data_dir, split)
    return tfr.shuffled_windows(
        files,
        lambda record, filename: decode_push_example(record, filename, sequence_length),
        seed,
        subsequence_length,
        start,
        shard_index,
        num_shards,
        where=f"{data_dir} split {split!r}",
    )


def eval_dataset(data_dir: str, split: str, num_frames: int = 20, context_frames: int = 2):
    """Evaluation sequences: the first `num_frames` frames, actions for all, states for the context frames only."""
    ds = read(data_dir, split, num_frames)
    return ds.map(lambda ex: {**ex, "states": ex["states"][:context_frames]})


def convert(src: str, split: str, out: str, sequence_length: int = 20, num_shards: int = 8, progress=True):
    """Converts a Robotic Pushing split (original schema, JPEG) to the shared format (preprocessed 64 x 64 uint8)."""
    from tqdm import tqdm

    files = split_files(src, split)
    count = sum(1 for _ in tf.data.TFRecordDataset(files))
    ds = read(src, split, sequence_length, files=files)
    bar = tqdm(total=count, desc=f"robot_pushing {split}", unit="seq", disable=not progress)
    with tfr.ShardedVideoWriter(out, f"robot_pushing_{split}", count, min(num_shards, count)) as writer:
        for ex in iterate(ds, files, sequence_length):
            writer.write(tfr.encode_video_example(ex["video"].numpy(), ex["actions"].numpy(), ex["states"].numpy()))
            bar.update(1)
    bar.close()
    return writer.paths


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m datasets.robot_pushing",
        description="Convert a Robotic Pushing split (the original TFRecords) to the shared 64 x 64 format.",
    )
    parser.add_argument("--src", required=True, help="directory holding push_train/, push_testseen/, ...")
    parser.add_argument("--split", required=True, choices=["train", "validation", "test_seen", "test_novel"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sequence_length", type=int, default=20)
    parser.add_argument("--num_shards", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        for p in convert(args.src, args.split, args.out, args.sequence_length, args.num_shards):
            print(p)
    except tfr.DataError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
