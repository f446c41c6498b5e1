"""Video datasets of TensorFlow Datasets (`dataset="tfds"`), e.g. `bair_robot_pushing_small` or `moving_mnist`.

A config names the TFDS dataset (`tfds_name`), which of its features are the video and the optional per-frame
actions and states (`tfds_features`, "video=KEY,actions=KEY,states=KEY"), and which TFDS split each of ours reads
(`tfds_splits`, TFDS slicing allowed: "validation=train[95%:]"). The data must be prepared beforehand, where a
network is available (`tfds build NAME`, or `tfds.builder(NAME).download_and_prepare()`); reading never downloads.

Training reads random `num_frames` windows from an endless, seeded shuffle of the split: deterministic for a seed,
and resumed exactly by skipping the sequences already consumed (which reads them again: TFDS files are read in
order, unlike the converted directories of `datasets.videos`, which resume at no cost).
"""

from __future__ import annotations

import tensorflow as tf

from vpn_tf.config import VPNConfig, parse_mapping
from vpn_tf.rng import ALG

from . import tfrecord as tfr

SHUFFLE_BUFFER = 1024
_WINDOW_SALT = 13


def features(config: VPNConfig) -> dict[str, str]:
    return parse_mapping(config.tfds_features, "tfds_features", ("video", "actions", "states"))


def split_name(config: VPNConfig, split: str) -> str:
    """The TFDS split that our `split` reads; a ValueError naming `tfds_splits` when it maps none."""
    splits = parse_mapping(config.tfds_splits, "tfds_splits", ("train", "validation", "test"))
    if split not in splits:
        raise ValueError(
            f"tfds_splits={config.tfds_splits!r} maps no TFDS split to {split!r} (for {config.tfds_name}); add "
            f"'{split}=SPLIT'"
        )
    return splits[split]


def prepare_hint(name: str) -> str:
    return (
        f'Prepare it where a network is available: `tfds build {name}` (or python -c "import tensorflow_datasets '
        f"as tfds; tfds.builder('{name}').download_and_prepare()\"), then pass its data directory as --data_dir "
        "(default ~/tensorflow_datasets)"
    )


def load(config: VPNConfig, split: str, shuffle_files: bool = False, input_context=None):
    """Our `split` of the config's TFDS dataset as {"video": uint8 [T, H, W, C], "actions", "states"}."""
    import tensorflow_datasets as tfds

    keys = features(config)
    tfds_split = split_name(config, split)
    read_config = tfds.ReadConfig(shuffle_seed=0, input_context=input_context) if input_context else None
    try:
        ds = tfds.load(
            config.tfds_name,
            split=tfds_split,
            data_dir=config.data_dir or None,
            download=False,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )
    except tfds.core.registered.DatasetNotFoundError as e:
        raise tfr.DataError(f"TFDS has no dataset {config.tfds_name!r} ({e})") from None
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
        # TFDS reports unprepared data with an AssertionError ("Dataset ... not found at ...").
        raise tfr.DataError(
            f"TFDS dataset {config.tfds_name!r} split {tfds_split!r} is not prepared under "
            f"{config.data_dir or 'the default data directory'} ({str(e).splitlines()[0]}). "
            + prepare_hint(config.tfds_name)
        ) from None
    spec = ds.element_spec
    missing = [k for k in keys.values() if k not in spec]
    if missing:
        raise tfr.DataError(
            f"TFDS dataset {config.tfds_name!r} has no feature {missing} (tfds_features={config.tfds_features!r}); "
            f"its features: {sorted(spec)}"
        )
    video_spec = spec[keys["video"]]
    if video_spec.dtype != tf.uint8 or video_spec.shape.rank != 4:
        raise tfr.DataError(
            f"TFDS feature {config.tfds_name}/{keys['video']} is {video_spec.dtype.name} {video_spec.shape}, not uint8 "
            "video frames [T, H, W, C]"
        )
    frame = tuple(video_spec.shape[1:])
    if None not in frame and frame != config.frame_shape:
        raise tfr.DataError(
            f"TFDS feature {config.tfds_name}/{keys['video']} has frames {frame}; the config reads "
            f"{config.frame_shape} (set --height, --width, --channels)"
        )
    for name in ("actions", "states"):
        if name in keys:
            dim = spec[keys[name]].shape[-1]
            want = config.action_dim if name == "actions" else config.state_dim
            if dim is not None and dim != want:
                raise tfr.DataError(
                    f"TFDS feature {config.tfds_name}/{keys[name]} has {dim} values per frame; the config reads "
                    f"{want} ({name[:-1]}_dim)"
                )

    def pick(ex):
        out = {"video": ex[keys["video"]]}
        for name in ("actions", "states"):
            if name in keys:
                out[name] = tf.cast(ex[keys[name]], tf.float32)
        return out

    return ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_dataset(config: VPNConfig, seed: int, start: int = 0, shard_index: int = 0, num_shards: int = 1):
    """Endless random `num_frames` windows of the train split; pipeline i of k reads every k-th sequence."""
    ds = load(config, "train").shard(num_shards, shard_index)
    ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).repeat()
    positions = tf.data.Dataset.counter(start // num_shards, dtype=tf.int64)
    base = tf.constant([seed, _WINDOW_SALT], tf.int64)

    def window(ex, position):
        key = tf.random.experimental.stateless_fold_in(base, position * num_shards + shard_index, alg=ALG)
        tf.debugging.assert_greater_equal(
            tf.shape(ex["video"])[0], config.num_frames, f"{config.tfds_name}: sequences shorter than num_frames"
        )
        return tfr.random_window(ex, config.num_frames, key)

    ds = tf.data.Dataset.zip((ds.skip(start // num_shards), positions))
    return ds.map(window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def eval_dataset(config: VPNConfig, split: str):
    """A held-out split in TFDS's order: the first `eval_num_frames` frames of each sequence (states of the context
    frames only when the config reads states, as for pushing)."""
    n, n_ctx = config.eval_num_frames, config.context_frames

    def first(ex):
        out = {k: v[:n] for k, v in ex.items()}
        if "states" in out:
            out["states"] = out["states"][:n_ctx]
        return out

    return load(config, split).map(first)
