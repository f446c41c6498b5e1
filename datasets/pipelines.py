"""Turns a `VPNConfig` into tf.data pipelines of model inputs (the Parser step; decoding lives in each dataset).

Elements are dicts {"video": uint8 [T, H, W, C]} plus "actions" / "states" for conditional configs, and
"binary_video" (binary frames drawn from "video"'s grey levels, what a `binarize_inputs` network reads) for training
streams of `binarize_inputs` configs and for evaluation sets asked for with `binary_seed`. Splits:
- Moving MNIST: "train" (the infinite stream of MNIST training digits), "validation" (a fixed set of sequences of
  MNIST *training* digits from a seed space the training stream never uses: it drives the learning-rate plateau and
  never touches test digits), "test" (the fixed 10,000-sequence test set of MNIST test digits).
- Robotic Pushing (real data or the simulator, `config.data_dir`): "train", "validation", "test_seen", "test_novel".
- Your own videos (`dataset="videos"`, a directory written by `python -m datasets.videos`) and TFDS datasets
  (`dataset="tfds"`): "train", "validation", "test".
"""

from __future__ import annotations

import tensorflow as tf

from vpn_tf import distributions
from vpn_tf.config import VPNConfig
from vpn_tf.rng import ALG

from . import moving_mnist, robot_pushing, tfds_videos, videos

VALIDATION_SEED = 7_041_977  # even seeds of MNIST *train* digits: disjoint from the training stream's odd seeds
_BINARY_SALT = 0x42494E  # keeps the binarisation keys apart from the other uses of a run's seed


def with_binary_frames(ds, seed: int, first: int = 0, step: int = 1):
    """Adds "binary_video" to each element of `ds`: its video's pixels drawn as 0 or 255 with P(255) = x / 255.

    Element j is position `first + j * step` of its stream and its draw is keyed by (seed, position) alone, so a
    sequence gets the same binary frames however the stream is sharded over input pipelines and replicas, with or
    without XLA, and after an exact resume.
    """
    positions = tf.data.Dataset.range(first, 2**62, step)

    def add(ex, position):
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, _BINARY_SALT], tf.int64), position, alg=ALG)
        return {**ex, "binary_video": distributions.binarize(ex["video"], key)}

    return tf.data.Dataset.zip((ds, positions)).map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def splits(config: VPNConfig) -> tuple[str, ...]:
    if config.dataset in ("moving_mnist", "videos", "tfds"):
        return ("train", "validation", "test")
    return ("train", "validation", "test_seen", "test_novel")


def default_split(config: VPNConfig) -> str:
    """The split evaluation and sampling read unless told: the benchmark's test split ("test_seen" for pushing)."""
    return splits(config)[2]


def _check_split(config, split):
    if split not in splits(config):
        raise ValueError(f"Unknown split {split!r} for dataset {config.dataset!r}. Choices: {splits(config)}")


def _check_data_dir(config, split="train"):
    """The data directory holds the split to read (evaluating a test split needs no training data)."""
    import os

    wanted = [robot_pushing.SPLIT_DIRS[split]]
    if split == "validation":  # without push_val/, validation is the end of push_train/
        wanted.append(robot_pushing.SPLIT_DIRS["train"])
    if config.data_dir and any(os.path.isdir(os.path.join(config.data_dir, d)) for d in wanted):
        return
    where = repr(config.data_dir) if config.data_dir else "(unset)"
    hint = (
        "Generate simulated data with: "
        + "; ".join(
            f"python -m datasets.pushing_sim --out {config.data_dir or 'DIR'} --split {s} --workers 2"
            for s in ("train", "val", "test_seen", "test_novel")
        )
        if config.dataset == "pushing_sim"
        else "Point it to the Robotic Pushing data (push_train/, push_testseen/, push_testnovel/)."
    )
    raise ValueError(
        f"Config {config.name!r} reads {config.dataset} data from data_dir={where}, which has no "
        f"{' or '.join(d + '/' for d in wanted)} directory (split {split!r}). {hint}"
    )


def resize_video(video, height: int, width: int):
    """uint8 `[T, H, W, C]` -> uint8 `[T, height, width, C]` by area averaging (a no-op at the native size).

    Only small configs (e.g. `tiny`, 8 x 8) or configs that ask for other frame sizes than their data's train on
    resized frames; the benchmarks' 64 x 64 data is never resized.
    """
    if video.shape[1] == height and video.shape[2] == width:
        return video
    small = tf.image.resize(tf.cast(video, tf.float32), [height, width], method="area")
    return tf.cast(tf.clip_by_value(tf.round(small), 0.0, 255.0), tf.uint8)


def _select(config: VPNConfig, ex, num_frames):
    """Crops to `num_frames`, resizes to the config's frame size and keeps only what the config consumes."""
    out = {"video": resize_video(ex["video"][:num_frames], config.height, config.width)}
    if config.action_dim:
        out["actions"] = ex["actions"][:num_frames]
    if config.state_dim:
        out["states"] = ex["states"][:num_frames]
    return out


def train_dataset(config: VPNConfig, seed: int, start: int, shard_index: int = 0, num_shards: int = 1):
    """The unbatched, infinite training stream from global position `start` (exact resume), sharded for tf.distribute.

    Moving MNIST: shard i of k yields global positions start + i, start + i + k, ... of one generated stream, so
    batching the shards' outputs per replica gives the same sequences per global step for any number of input
    pipelines. Pushing: shard i reads its own files (`robot_pushing.train_dataset`), so the sequences of a step
    depend on k, and resuming costs the same at any position.
    """
    if config.dataset == "moving_mnist":
        ds = moving_mnist.train_stream(seed, start, shard_index, num_shards, num_frames=config.num_frames)
    elif config.dataset == "videos":
        _check_videos(config)
        ds = videos.train_dataset(
            config.data_dir,
            seed,
            config.num_frames,
            start,
            shard_index,
            num_shards,
            config.action_dim,
            config.state_dim,
        )
    elif config.dataset == "tfds":
        ds = tfds_videos.train_dataset(config, seed, start, shard_index, num_shards)
    else:
        _check_data_dir(config)
        ds = robot_pushing.train_dataset(
            config.data_dir,
            seed,
            subsequence_length=config.num_frames,
            sequence_length=max(config.eval_num_frames, config.num_frames),
            start=start,
            shard_index=shard_index,
            num_shards=num_shards,
        )
    ds = ds.map(lambda ex: _select(config, ex, config.num_frames))
    if config.binarize_inputs:
        # Moving MNIST: the global stream position (see above), so the draws do not depend on the replica layout.
        ds = with_binary_frames(ds, seed, start + shard_index, num_shards)
    return ds


def validation_binary_seed(config: VPNConfig) -> int | None:
    """The `binary_seed` a run validates with (and decays its learning rate on): binary frames drawn from the
    validation set's grey levels, the same draws at every evaluation, for runs reading binary frames
    (`VPNConfig.validates_on_binary_frames`); None (the grey frames, the paper's metric) for the others."""
    return 0 if config.validates_on_binary_frames else None


def eval_dataset(
    config: VPNConfig,
    split: str,
    num_sequences: int | None = None,
    cache_dir: str | None = None,
    binary_seed: int | None = None,
):
    """The first `num_sequences` (all if None) of a held-out split, in a fixed order, unbatched.

    With `binary_seed`, each sequence also carries "binary_video", drawn with that seed (`with_binary_frames`): the
    network then reads binary frames and is scored against the grey levels (`training.batch_log_prob`).

    Moving MNIST sequences have `eval_num_frames` frames; pushing evaluation keeps `eval_num_frames` frames, actions
    for all of them and states for the context frames only (§6.1).
    """
    _check_split(config, split)
    if split == "train":
        raise ValueError("eval_dataset reads held-out splits; use train_dataset for training data")
    if config.dataset == "moving_mnist":
        if split == "validation":
            n = num_sequences or config.eval_sequences
            ds = moving_mnist.generate("train", VALIDATION_SEED * 2, count=n, num_frames=config.eval_num_frames)
        else:
            ds = moving_mnist.load_test(cache_dir, progress=False)
        ds = ds.map(lambda ex: _select(config, ex, config.eval_num_frames))
    elif config.dataset == "videos":
        _check_videos(config)
        ds = videos.eval_dataset(config.data_dir, split, config.eval_num_frames, config.action_dim, config.state_dim)
        ds = ds.map(lambda ex: _select(config, _context_states(config, ex), config.eval_num_frames))
    elif config.dataset == "tfds":
        ds = tfds_videos.eval_dataset(config, split).map(lambda ex: _select(config, ex, config.eval_num_frames))
    else:
        _check_data_dir(config, split)
        ds = robot_pushing.eval_dataset(config.data_dir, split, config.eval_num_frames, config.context_frames)
        ds = ds.map(lambda ex: _select(config, ex, config.eval_num_frames))
    ds = ds.take(num_sequences) if num_sequences else ds
    return ds if binary_seed is None else with_binary_frames(ds, binary_seed)


def _context_states(config, ex):
    """Evaluation reads the states of the context frames only, as for pushing (§6.1): later ones are unknown."""
    return {**ex, "states": ex["states"][: config.context_frames]} if "states" in ex else ex


def _check_videos(config):
    """A converted directory must have the config's channels and vectors (frame sizes are resized to fit)."""
    from .tfrecord import DataError

    info = videos.data_info(config.data_dir)
    for field in ("channels", "action_dim", "state_dim"):
        if info[field] != getattr(config, field):
            raise DataError(
                f"{config.data_dir} holds data with {field}={info[field]}; config {config.name!r} reads "
                f"{field}={getattr(config, field)}"
            )


def fill_from_data(config: VPNConfig, given=()) -> VPNConfig:
    """`dataset="videos"`: the frame height, width and channels and the action and state sizes of the converted
    directory, for each of those fields not in `given` (the fields set explicitly, e.g. on the command line), and a
    softmax output for RGB data unless `output` was given. Other datasets: `config` as it is."""
    if config.dataset != "videos":
        return config
    info = videos.data_info(config.data_dir)
    fields = ("height", "width", "channels", "action_dim", "state_dim")
    overrides = {f: info[f] for f in fields if f not in given and getattr(config, f) != info[f]}
    channels = overrides.get("channels", config.channels)
    if channels == 3 and "output" not in given:
        overrides["output"] = "softmax"
    return config.replace(**overrides) if overrides else config


def digit_classes(config: VPNConfig, split: str, num_sequences: int):
    """Moving MNIST: int64 `[num_sequences, 2]`, the classes of the digits in the first sequences of a held-out
    split, in `eval_dataset`'s order (for the digit reader, `vpn_tf.diagnostics.legibility`)."""
    _check_split(config, split)
    if config.dataset != "moving_mnist" or split == "train":
        raise ValueError(
            f"digit classes exist for Moving MNIST's held-out splits only. Received {config.dataset}, {split}"
        )
    if split == "validation":
        return moving_mnist.digit_classes("train", VALIDATION_SEED * 2, num_sequences)
    return moving_mnist.test_digit_classes(num_sequences)


def distributed_train_dataset_fn(config: VPNConfig, seed: int, start: int):
    """A function of a `tf.distribute.InputContext` giving that pipeline's per-replica batched training data."""

    def fn(ctx: tf.distribute.InputContext):
        per_replica = ctx.get_per_replica_batch_size(config.batch_size)
        # Each pipeline reads its own shard of the global stream. With one pipeline feeding several replicas, the
        # strategy hands consecutive per-replica batches to the replicas: the global batch is the next
        # `batch_size` sequences of the stream, as with one device.
        ds = train_dataset(config, seed, start, ctx.input_pipeline_id, ctx.num_input_pipelines)
        return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    return fn
