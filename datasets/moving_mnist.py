"""Moving MNIST (Srivastava et al., 2015): two digits moving with constant velocity and bouncing off the walls.

Protocol (that of Srivastava et al.'s generator, which the VPN paper follows, §5):
- frames 64 x 64, 20 per sequence, two 28 x 28 digits, each drawn uniformly (with replacement) from the split;
- each digit's position is a point (y, x) in [0, 1]^2 of the free range (64 - 28 = 36 pixels), drawn uniformly;
  its direction theta is uniform in [0, 2 pi) and its speed is 0.1 of the free range per frame
  (v = 0.1 * (sin theta, cos theta));
- every frame first moves each digit by v, then bounces: a coordinate that reaches 0 or 1 is clipped to it and its
  velocity component negated; so frame 0 already shows the first step, as in the original generator;
- pixel offsets are floor(36 * position); overlapping digits are combined by max.
Training sequences use MNIST *training* digits and are generated on the fly without limit (`train_stream`). The test
set is 10,000 sequences of MNIST *test* digits from a fixed seed (`load_test`), cached as sharded TFRecords.

Every sequence is a pure function of (split, seed, index): a stateless seed is folded from the index, so streams are
reproducible, can be resumed at any position, and shard across tf.distribute input pipelines without overlap.

MNIST: Yann LeCun, Corinna Cortes, Christopher J.C. Burges, CC BY-SA 3.0; sequences derived from it inherit that.

CLI: `python -m datasets.moving_mnist lower_bound` prints the test set's lower bound (Eq. 5 with y = z);
`python -m datasets.moving_mnist build_test` writes the test-set cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import tensorflow as tf

from vpn_tf.rng import ALG
from vpn_tf.stats import mean_and_stderr

from . import mnist
from . import tfrecord as tfr

FRAME_SIZE = 64
DIGIT_SIZE = 28
NUM_FRAMES = 20
NUM_DIGITS = 2
SPEED = 0.1
CONTEXT_FRAMES = 10
TEST_SIZE = 10_000
TEST_SEED = 20_170_806  # fixed forever: changing it changes the test set
TEST_SHARDS = 10
TRAIN_SEED_SALT = 1  # keeps training streams disjoint in seed space from the test set's
FORMAT_VERSION = 1


def default_cache_dir() -> str:
    """`$VPN_TF_DATA_DIR` or `~/.cache/vpn_tf`: where generated data (the test-set TFRecords) is cached."""
    return os.environ.get("VPN_TF_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vpn_tf")


# ---------------------------------------------------------------------------------------------------------------------
# Generation (graph ops)
# ---------------------------------------------------------------------------------------------------------------------


def trajectories(seed, num_frames=NUM_FRAMES, num_digits=NUM_DIGITS, speed=SPEED):
    """Positions in [0, 1]^2 of the free range, `[num_digits, num_frames, 2]` float32, for a stateless `seed[2]`."""
    s_pos, s_theta = tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg=ALG))
    start = tf.random.stateless_uniform([num_digits, 2], s_pos, alg=ALG)
    theta = tf.random.stateless_uniform([num_digits], s_theta, alg=ALG) * (2.0 * math.pi)
    velocity = speed * tf.stack([tf.sin(theta), tf.cos(theta)], axis=-1)

    def step(carry, _):
        pos, vel = carry
        pos = pos + vel
        low, high = pos <= 0.0, pos >= 1.0
        vel = tf.where(low | high, -vel, vel)
        pos = tf.clip_by_value(pos, 0.0, 1.0)
        return pos, vel

    positions, _ = tf.scan(step, tf.zeros([num_frames]), initializer=(start, velocity))
    return tf.transpose(positions, [1, 0, 2])


def render(digits, positions, frame_size=FRAME_SIZE):
    """Draws digits `[D, 28, 28]` uint8 at `positions` `[D, T, 2]` -> uint8 `[T, frame_size, frame_size, 1]` (max).

    Placement is a product with one-hot shift matrices, exact for integer pixel values, and vectorised over frames.
    """
    size = digits.shape[-1]
    free = frame_size - size
    offsets = tf.cast(tf.floor(positions * free), tf.int32)  # [D, T, 2]
    rows = tf.one_hot(offsets[..., 0:1] + tf.range(size), frame_size)  # [D, T, 28, 64]
    cols = tf.one_hot(offsets[..., 1:2] + tf.range(size), frame_size)
    canvas = tf.einsum("dtkh,dkl,dtlw->dthw", rows, tf.cast(digits, tf.float32), cols)
    return tf.cast(tf.reduce_max(canvas, axis=0), tf.uint8)[..., None]


def sequence_seed(seed: int, index):
    """The stateless seed of sequence `index` of the stream with integer `seed`."""
    base = tf.constant([seed & 0x7FFFFFFF, seed >> 31], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64), alg=ALG)


def make_sequence(images, seed, num_frames=NUM_FRAMES, num_digits=NUM_DIGITS, speed=SPEED):
    """One sequence: (uint8 video `[T, 64, 64, 1]`, int32 digit indices `[num_digits]`) for a stateless `seed`."""
    s_digits, s_traj = tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg=ALG))
    n = tf.shape(images, out_type=tf.int32)[0]
    idx = tf.random.stateless_uniform([num_digits], s_digits, minval=0, maxval=n, dtype=tf.int32, alg=ALG)
    video = render(tf.gather(images, idx), trajectories(s_traj, num_frames, num_digits, speed))
    return video, idx


def generate(
    split: str,
    seed: int,
    start: int = 0,
    count: int | None = None,
    step: int = 1,
    num_frames: int = NUM_FRAMES,
    with_digit_indices: bool = False,
    mnist_dir: str | None = None,
):
    """Sequences start, start + step, start + 2 step, ... (`count` of them, or forever) of the stream (split, seed).

    Elements are {"video": uint8 [T, 64, 64, 1]} (plus "digits": int32 indices into the MNIST split when asked).
    Generation runs in a parallel, order-preserving `map`, so the output is the same whatever the parallelism.
    """
    images = tf.constant(mnist.load(split, mnist_dir)[0])
    stop = None if count is None else start + count * step
    indices = tf.data.Dataset.range(start, stop if stop is not None else 2**62, step)

    def fn(i):
        video, idx = make_sequence(images, sequence_seed(seed, i), num_frames)
        out = {"video": tf.ensure_shape(video, [num_frames, FRAME_SIZE, FRAME_SIZE, 1])}
        if with_digit_indices:
            out["digits"] = idx
        return out

    return indices.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_stream(
    seed: int,
    start: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    num_frames: int = NUM_FRAMES,
    with_digit_indices: bool = False,
    mnist_dir: str | None = None,
    prefetch: bool = True,
):
    """The infinite training stream of uint8 `[T, 64, 64, 1]` sequences of MNIST *training* digits.

    Args:
        seed: the stream's seed: the same seed gives the same sequences.
        start: position in the global stream to start from (exact resume after `start` sequences were consumed).
        shard_index, num_shards: this input pipeline's share under tf.distribute: pipeline i yields global
            positions start + i, start + i + num_shards, ... so pipelines never overlap (use
            `input_context.input_pipeline_id` and `num_input_pipelines`).
        num_frames: frames per sequence.
        with_digit_indices: also yield "digits", the MNIST training indices used.
        mnist_dir: an MNIST directory other than the shipped copy.
        prefetch: prefetch with AUTOTUNE.

    Returns:
        A `tf.data.Dataset` of {"video": ...} (unbatched).
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards. Received: {shard_index}, {num_shards}")
    ds = generate(
        "train",
        seed * 2 + TRAIN_SEED_SALT,
        start=start + shard_index,
        step=num_shards,
        num_frames=num_frames,
        with_digit_indices=with_digit_indices,
        mnist_dir=mnist_dir,
    )
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


# ---------------------------------------------------------------------------------------------------------------------
# Digit classes (for the digit reader, `vpn_tf.models.digit_reader`)
# ---------------------------------------------------------------------------------------------------------------------

READER_SEED = 424_242  # the digit reader's training stream: a training-digit stream no VPN run uses by default


def digit_classes(split: str, seed: int, count: int, mnist_dir: str | None = None) -> np.ndarray:
    """int64 `[count, NUM_DIGITS]`: the classes of the digits in the first `count` sequences of the stream
    (split, seed), regenerated from the same seeds (`generate(..., with_digit_indices=True)`)."""
    labels = mnist.load(split, mnist_dir)[1]
    ds = generate(split, seed, count=count, num_frames=1, with_digit_indices=True, mnist_dir=mnist_dir)
    indices = np.concatenate([b["digits"].numpy() for b in ds.batch(1024)]) if count else np.zeros((0, 2), int)
    return labels[indices].astype(np.int64)


def test_digit_classes(num_sequences: int, seed: int = TEST_SEED) -> np.ndarray:
    """The digit classes of the first `num_sequences` sequences of the fixed test set."""
    return digit_classes("test", seed * 2, num_sequences)


def reader_training_frames(num_sequences: int = 3000, frames_per_sequence: int = 10, seed: int = READER_SEED):
    """(uint8 frames `[N, 64, 64, 1]`, int64 classes `[N, 2]`) from the *training* stream: `frames_per_sequence`
    random frames of each of `num_sequences` sequences (training digits only, never test digits)."""
    labels = mnist.load("train")[1]
    ds = generate("train", seed * 2 + TRAIN_SEED_SALT, count=num_sequences, with_digit_indices=True)
    rng = np.random.default_rng(seed)
    frames, classes = [], []
    for batch in ds.batch(256):
        video, idx = batch["video"].numpy(), batch["digits"].numpy()
        pick = rng.integers(0, video.shape[1], (len(video), frames_per_sequence))
        frames.append(np.take_along_axis(video, pick[:, :, None, None, None], axis=1).reshape(-1, 64, 64, 1))
        classes.append(np.repeat(labels[idx], frames_per_sequence, axis=0))
    return np.concatenate(frames), np.concatenate(classes).astype(np.int64)


def train_reader_command(out: str, steps: int = 2000, num_sequences: int = 3000, seed: int = 0) -> dict:
    """Trains the digit reader on the training stream, saves it to `out`, and reports its accuracy on held-out
    frames (test digits, which it never saw) with and without binarisation and with shuffled labels (chance)."""
    from vpn_tf.models.digit_reader import train_reader

    tf.config.experimental.enable_op_determinism()
    frames, classes = reader_training_frames(num_sequences, seed=READER_SEED + seed)
    reader = train_reader(frames, classes, steps=steps, seed=seed, progress=True)
    path = reader.save(out)
    held_out = next(iter(generate("test", TEST_SEED * 2 + 1, count=500).batch(500)))["video"].numpy()
    truth = digit_classes("test", TEST_SEED * 2 + 1, 500)
    rng = np.random.default_rng(seed)
    binary = np.where(rng.random(held_out.shape) < held_out / 255.0, 255, 0).astype(np.uint8)
    report = {
        "weights": path,
        "read_right_true_frames": float(reader.read_right(held_out, truth).mean()),
        "read_right_binarised_frames": float(reader.read_right(binary, truth).mean()),
        "read_right_shuffled_labels": float(reader.read_right(held_out, rng.permutation(truth)).mean()),
    }
    with open(os.path.join(out, "reader.json"), "w") as f:
        json.dump({**report, "steps": steps, "training_sequences": num_sequences, "seed": seed}, f, indent=2)
    return report


# ---------------------------------------------------------------------------------------------------------------------
# The fixed test set
# ---------------------------------------------------------------------------------------------------------------------


def _test_dir(cache_dir, num_sequences, seed):
    name = f"moving_mnist_test_v{FORMAT_VERSION}_seed{seed}_n{num_sequences}"
    return os.path.join(cache_dir or default_cache_dir(), name)


def build_test(
    cache_dir: str | None = None,
    num_sequences: int = TEST_SIZE,
    seed: int = TEST_SEED,
    num_shards: int = TEST_SHARDS,
    progress: bool = True,
) -> str:
    """Generates the test set (MNIST *test* digits, even seeds) into sharded TFRecords; returns the directory.

    The files are byte-identical for the same (num_sequences, seed, num_shards): a manifest records each shard's
    sha256 so that a regenerated cache can be compared with another machine's.
    """
    out = _test_dir(cache_dir, num_sequences, seed)
    num_shards = min(num_shards, num_sequences)
    ds = generate("test", seed * 2, count=num_sequences).batch(64)
    bar = _progress(num_sequences, "Moving MNIST test set", progress)
    with tfr.ShardedVideoWriter(out, "moving_mnist_test", num_sequences, num_shards) as writer:
        for batch in ds:
            for video in batch["video"].numpy():
                writer.write(tfr.encode_video_example(video))
            bar.update(len(batch["video"]))
    bar.close()
    manifest = {
        "format_version": FORMAT_VERSION,
        "num_sequences": num_sequences,
        "seed": seed,
        "files": {os.path.basename(p): _sha256(p) for p in writer.paths},
        "protocol": "see datasets/moving_mnist.py",
        "license": "Derived from MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
    }
    path = os.path.join(out, "manifest.json")
    with open(f"{path}.{os.getpid()}", "w") as f:  # written whole, then renamed: readers see all of it or none
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(f"{path}.{os.getpid()}", path)
    return out


def load_test(
    cache_dir: str | None = None,
    num_sequences: int = TEST_SIZE,
    seed: int = TEST_SEED,
    build_if_missing: bool = True,
    progress: bool = True,
):
    """The fixed Moving MNIST test set: a `tf.data.Dataset` of {"video": uint8 [20, 64, 64, 1]} in a fixed order.

    Reads the TFRecord cache under `cache_dir` (default `default_cache_dir()`), generating it first when missing or
    incomplete (about a minute for 10,000 sequences on 2 cores).
    """
    out = _test_dir(cache_dir, num_sequences, seed)
    manifest_path = os.path.join(out, "manifest.json")
    if not os.path.exists(manifest_path):
        if not build_if_missing:
            raise FileNotFoundError(
                f"No Moving MNIST test cache at {out}; run `python -m datasets.moving_mnist build_test`"
            )
        build_test(cache_dir, num_sequences, seed, progress=progress)
    with open(manifest_path) as f:
        manifest = json.load(f)
    files = [os.path.join(out, name) for name in sorted(manifest["files"])]
    missing = [p for p in files if not os.path.exists(p)]
    if missing:
        if not build_if_missing:
            raise FileNotFoundError(f"Moving MNIST test cache {out} lacks {missing}")
        build_test(cache_dir, num_sequences, seed, progress=progress)
    return tfr.read_videos(files, frame_shape=(FRAME_SIZE, FRAME_SIZE, 1))


def verify_test_cache(cache_dir: str | None = None, num_sequences: int = TEST_SIZE, seed: int = TEST_SEED) -> dict:
    """{file: (recorded sha256, actual sha256)} of every shard whose bytes differ from the manifest (empty: intact)."""
    out = _test_dir(cache_dir, num_sequences, seed)
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    bad = {}
    for name, digest in manifest["files"].items():
        path = os.path.join(out, name)
        actual = _sha256(path) if os.path.exists(path) else None
        if actual != digest:
            bad[name] = (digest, actual)
    return bad


# ---------------------------------------------------------------------------------------------------------------------
# Other sources of the same benchmark
# ---------------------------------------------------------------------------------------------------------------------


def read_npy(path: str):
    """The standard `mnist_test_seq.npy` (uint8 `[20, 10000, 64, 64]`, Srivastava et al.) as a dataset of
    {"video": uint8 [20, 64, 64, 1]}, so results can be compared with the literature on the same sequences."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (the standard Moving MNIST test file, mnist_test_seq.npy)")
    try:
        arr = np.load(path, mmap_mode="r")
    except ValueError as e:
        raise tfr.DataError(f"{path}: not a .npy array ({e})") from e
    if arr.ndim != 4 or arr.shape[2:] != (FRAME_SIZE, FRAME_SIZE) or arr.dtype != np.uint8:
        raise tfr.DataError(
            f"{path}: expected uint8 [time, sequences, 64, 64] like mnist_test_seq.npy [20, 10000, 64, 64]. "
            f"Received: dtype={arr.dtype}, shape={arr.shape}"
        )
    videos = np.ascontiguousarray(np.transpose(arr, (1, 0, 2, 3)))[..., None]
    return tf.data.Dataset.from_tensor_slices({"video": videos})


def load_tfds(data_dir: str | None = None, split: str = "test"):
    """TFDS's `moving_mnist` (the same 10,000 standard sequences) when it is already prepared in `data_dir`.

    Nothing is downloaded: a missing preparation raises with instructions.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder("moving_mnist", data_dir=data_dir)
    except Exception as e:  # pragma: no cover - depends on the TFDS install
        raise FileNotFoundError(f"TFDS moving_mnist is not available: {e}") from e
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS moving_mnist is not prepared in {builder.data_dir}. Prepare it where you have internet "
            "(tfds build moving_mnist) or pass the standard mnist_test_seq.npy to read_npy."
        )
    ds = builder.as_dataset(split=split, shuffle_files=False)
    return ds.map(lambda ex: {"video": ex["image_sequence"]})


# ---------------------------------------------------------------------------------------------------------------------
# The lower bound (§4.2, Eq. 5 with y = z)
# ---------------------------------------------------------------------------------------------------------------------


def lower_bound(dataset, context_frames: int = CONTEXT_FRAMES, batch_size: int = 100, progress=False, total=None):
    """(mean, standard error, count) of the lower bound in nats/frame over the frames after the context."""
    from vpn_tf.distributions import lower_bound_nats_per_frame

    values = []
    bar = _progress(total, "lower bound", progress)
    for batch in dataset.batch(batch_size):
        v = lower_bound_nats_per_frame(batch["video"], context_frames).numpy()
        values.append(v)
        bar.update(len(v))
    bar.close()
    values = np.concatenate(values).astype(np.float64)
    mean, stderr = mean_and_stderr(values)
    return float(mean), float(stderr), len(values)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="seq", disable=not enabled, file=sys.stderr)


def write_videos(
    out: str, num_sequences: int, split: str = "test", gifs: bool = False, start: int = 0, progress: bool = True
) -> dict:
    """Writes `num_sequences` Moving MNIST sequences of `split` from sequence `start` on ("test": the test set's,
    MNIST test digits; "train": the training stream's) as `OUT/moving_mnist_SPLIT.npy`, uint8 `[20, N, 64, 64]` in
    the layout of the standard `mnist_test_seq.npy` (time-major), and with `gifs` one GIF per sequence under
    `OUT/gifs/`: example input for `python -m datasets.videos`. Returns the paths written."""
    from vpn_tf import visualize

    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train'. Received: {split!r}")
    seed = TEST_SEED * 2 if split == "test" else 1  # the test set's sequences; an odd seed of the training stream's
    ds = generate(split, seed, start=start, count=num_sequences).batch(64)
    bar = _progress(num_sequences, f"Moving MNIST {split} -> npy", progress)
    videos = []
    for batch in ds:
        videos.append(batch["video"].numpy()[..., 0])
        bar.update(len(videos[-1]))
    bar.close()
    array = np.concatenate(videos)  # [N, 20, 64, 64]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"moving_mnist_{split}.npy")
    tmp = path + f".incomplete-{os.getpid()}.npy"
    np.save(tmp, np.ascontiguousarray(np.swapaxes(array, 0, 1)))
    os.replace(tmp, path)
    written = {"npy": path}
    if gifs:
        folder = os.path.join(out, "gifs")
        os.makedirs(folder, exist_ok=True)
        for n, video in enumerate(array):
            visualize.save_gif(os.path.join(folder, f"sequence_{start + n:05d}.gif"), video[..., None])
        written["gifs"] = folder
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m datasets.moving_mnist", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lb = sub.add_parser("lower_bound", help="print the test set's lower bound in nats/frame")
    lb.add_argument(
        "--source", default="test", help="'test' (our fixed test set), 'tfds', or a path to mnist_test_seq.npy"
    )
    lb.add_argument("--num_sequences", type=int, default=TEST_SIZE, help="size of our test set (default 10000)")
    lb.add_argument(
        "--cache_dir", default=None, help="test-set cache directory (default $VPN_TF_DATA_DIR or ~/.cache/vpn_tf)"
    )
    bt = sub.add_parser("build_test", help="generate the test-set TFRecord cache")
    bt.add_argument("--num_sequences", type=int, default=TEST_SIZE)
    bt.add_argument("--cache_dir", default=None)
    tr = sub.add_parser("train_reader", help="train the digit reader that measures sample legibility")
    tr.add_argument("--out", required=True, help="directory for the reader's weights (e.g. pretrained/digit_reader)")
    tr.add_argument("--steps", type=int, default=2000)
    tr.add_argument("--num_sequences", type=int, default=3000, help="training-stream sequences (10 frames each)")
    tr.add_argument("--seed", type=int, default=0)
    wv = sub.add_parser(
        "write_videos", help="write sequences as an mnist_test_seq.npy-style array (and GIFs), for datasets.videos"
    )
    wv.add_argument("--out", required=True, help="output folder")
    wv.add_argument("--num_sequences", type=int, default=100)
    wv.add_argument(
        "--split", default="test", choices=("test", "train"), help="the test set's or the training stream's"
    )
    wv.add_argument("--gifs", action="store_true", help="also one GIF per sequence under OUT/gifs/")
    wv.add_argument("--start", type=int, default=0, help="the first sequence to write (default 0)")
    args = parser.parse_args(argv)
    if args.command == "write_videos":
        print(json.dumps(write_videos(args.out, args.num_sequences, args.split, args.gifs, args.start), indent=2))
        return
    if args.command == "train_reader":
        print(json.dumps(train_reader_command(args.out, args.steps, args.num_sequences, args.seed), indent=2))
        return
    if args.command == "build_test":
        print(build_test(args.cache_dir, args.num_sequences))
        return
    if args.source == "test":
        ds, name, n = load_test(args.cache_dir, args.num_sequences), "vpn_tf test set", args.num_sequences
    elif args.source == "tfds":
        ds, name, n = load_tfds(), "TFDS moving_mnist", None
    else:
        ds, name, n = read_npy(args.source), args.source, None
    mean, se, count = lower_bound(ds, progress=True, total=n)
    print(f"{name}: lower bound {mean:.2f} nats/frame (standard error {se:.2f}, {count} sequences, frames 11-20)")


if __name__ == "__main__":
    main()
