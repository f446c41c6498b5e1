"""datasets.pipelines: the binary frames a `binarize_inputs` network reads (the other pipeline behaviour is tested
with each dataset and through training)."""

import numpy as np
import pytest

import vpn_tf
from datasets import pipelines
from tests.scripts import run_script
from vpn_tf import training


def _take(ds, n):
    return list(ds.take(n).as_numpy_iterator())


def test_binary_frames_belong_to_the_stream_position_not_to_the_sharding():
    config = vpn_tf.get_config("tiny", binarize_inputs=True)
    stream = _take(pipelines.train_dataset(config, 3, start=0), 4)
    second_shard = _take(pipelines.train_dataset(config, 3, start=0, shard_index=1, num_shards=2), 2)
    resumed = _take(pipelines.train_dataset(config, 3, start=2), 2)
    for a, b in list(zip(stream[1::2], second_shard, strict=True)) + list(zip(stream[2:], resumed, strict=True)):
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["binary_video"], b["binary_video"])
    grey_pixels = 0
    for ex in stream:
        video, binary = ex["video"], ex["binary_video"]
        assert binary.dtype == np.uint8 and binary.shape == video.shape
        assert set(np.unique(binary)) <= {0, 255}
        assert np.all(binary[video == 0] == 0) and np.all(binary[video == 255] == 255)
        grey = (video > 0) & (video < 255)
        grey_pixels += grey.sum()
        assert 0 < (binary[grey] == 255).mean() < 1  # the grey levels are drawn, not thresholded
    assert grey_pixels > 100
    # Another run seed, other draws of the same kind; without binarize_inputs the stream has no binary frames.
    other = _take(pipelines.train_dataset(config, 4, start=0), 1)[0]
    assert not np.array_equal(other["binary_video"], stream[0]["binary_video"])
    assert "binary_video" not in _take(pipelines.train_dataset(config.replace(binarize_inputs=False), 3, 0), 1)[0]


def test_evaluation_sets_get_binary_frames_only_when_asked():
    config = vpn_tf.get_config("tiny")
    plain = _take(pipelines.eval_dataset(config, "validation", 3), 3)
    assert all("binary_video" not in ex for ex in plain)
    a = _take(pipelines.eval_dataset(config, "validation", 3, binary_seed=5), 3)
    b = _take(pipelines.eval_dataset(config, "validation", 3, binary_seed=5), 3)
    c = _take(pipelines.eval_dataset(config, "validation", 3, binary_seed=6), 3)
    for x, y, p in zip(a, b, plain, strict=True):
        np.testing.assert_array_equal(x["video"], p["video"])
        np.testing.assert_array_equal(x["binary_video"], y["binary_video"])
    assert not all(np.array_equal(x["binary_video"], z["binary_video"]) for x, z in zip(a, c, strict=True))
    # Sequences of one set get different draws (keyed by their index), not one noise pattern repeated.
    assert not np.array_equal(a[0]["binary_video"] == 255, a[1]["binary_video"] == 255)


def test_binary_draws_are_keyed_by_seed_and_position_alone():
    import tensorflow as tf

    # Identical all-grey videos, so any difference between draws comes from the key.
    same = tf.data.Dataset.from_tensors({"video": tf.fill([2, 8, 8, 1], tf.constant(128, tf.uint8))}).repeat(3)

    def draws(seed, first=0, step=1):
        return [ex["binary_video"] for ex in _take(pipelines.with_binary_frames(same, seed, first, step), 3)]

    base = draws(5)
    assert not np.array_equal(base[0], base[1]) and not np.array_equal(base[1], base[2])  # by position
    assert not np.array_equal(base[0], draws(6)[0])  # by seed
    np.testing.assert_array_equal(draws(5, first=1, step=1)[0], base[1])  # position 1, however it is reached
    np.testing.assert_array_equal(draws(5, first=0, step=2)[1], base[2])
    # An evaluation set's draws do not depend on how many sequences are taken.
    config = vpn_tf.get_config("tiny")
    two = _take(pipelines.eval_dataset(config, "validation", 2, binary_seed=5), 2)
    three = _take(pipelines.eval_dataset(config, "validation", 3, binary_seed=5), 3)
    for a, b in zip(two, three[:2], strict=True):
        np.testing.assert_array_equal(a["binary_video"], b["binary_video"])


def test_runs_validate_on_what_they_are_measured_by():
    assert pipelines.validation_binary_seed(vpn_tf.get_config("tiny")) is None
    assert pipelines.validation_binary_seed(vpn_tf.get_config("tiny", binarize_inputs=True)) == 0


@pytest.mark.large
@pytest.mark.parametrize("binarize, reading", [("true", "binary"), ("false", "grey")])
def test_train_py_validates_on_the_reading_the_run_is_measured_by(tmp_path, binarize, reading):
    # (Here, not in test_training.py: it tests which frames validate, not kernels, so CI runs it once.)
    flags = ("--config", "tiny", "--no_progress", "--workdir", tmp_path, "--steps", "2", "--no_samples")
    out = run_script("train.py", *flags, "--binarize_inputs", binarize, check=True)
    printed = float(out.stdout.split("nats_per_frame=")[1].split()[0])
    config, model = training.restore_model(str(tmp_path))
    n = config.eval_sequences
    binary, grey = (
        training.Evaluator(config, model)(pipelines.eval_dataset(config, "validation", n, binary_seed=seed))
        for seed in (0, None)
    )
    assert abs(binary["nats_per_frame"] - grey["nats_per_frame"]) > 1e-3  # the readings differ on these weights
    assert printed == pytest.approx({"binary": binary, "grey": grey}[reading]["nats_per_frame"], abs=1e-4)
