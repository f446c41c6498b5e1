"""`dataset="tfds"` under `tfds.testing.mock_data`: the real feature specs of bair_robot_pushing_small and
moving_mnist, random pixels, nothing downloaded."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from datasets import pipelines  # noqa: E402
from datasets.tfrecord import DataError  # noqa: E402
from vpn_tf.presets import get_config  # noqa: E402


@pytest.fixture
def mock():
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


@pytest.mark.parametrize("preset", ["cpu_bair_robot_pushing_small", "bair_robot_pushing_small_paper"])
def test_bair_training_windows_and_evaluation_sequences(mock, preset):
    config = get_config(preset)
    ex = next(iter(pipelines.train_dataset(config, seed=0, start=0)))
    assert ex["video"].shape == (12, 64, 64, 3) and ex["video"].dtype == np.uint8
    assert ex["actions"].shape == (12, 4) and ex["states"].shape == (12, 3)
    test = list(pipelines.eval_dataset(config, "test"))
    assert len(test) == 5
    # 20 frames, actions for all, states for the 2 context frames only (§6.1).
    assert {k: tuple(v.shape) for k, v in test[0].items()} == {
        "video": (20, 64, 64, 3),
        "actions": (20, 4),
        "states": (2, 3),
    }
    assert len(list(pipelines.eval_dataset(config, "validation"))) > 0


def test_training_stream_is_seeded_and_resumes_exactly(mock):
    config = get_config("cpu_bair_robot_pushing_small")
    stream = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 3, 0).take(7)]
    resumed = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 3, 4).take(3)]
    for a, b in zip(stream[4:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    again = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 3, 0).take(7)]
    assert all(np.array_equal(a, b) for a, b in zip(stream, again, strict=True))
    other = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 4, 0).take(7)]
    assert not all(np.array_equal(a, b) for a, b in zip(stream, other, strict=True))  # the seed matters


def test_moving_mnist_test_split_for_the_moving_mnist_models(mock):
    config = get_config("moving_mnist_tfds")
    test = list(pipelines.eval_dataset(config, "test"))
    assert len(test) == 5 and test[0]["video"].shape == (20, 64, 64, 1)
    # The trained Moving MNIST models read it with their own frame protocol (10 + 10).
    assert get_config("cpu_moving_mnist").diff(config, ("height", "width", "channels", "context_frames")) == {}
    with pytest.raises(ValueError, match=r"maps no TFDS split to 'train'.*add 'train=SPLIT'"):
        pipelines.train_dataset(config, 0, 0)


def test_features_that_are_not_there_or_do_not_fit_are_named(mock):
    config = get_config("moving_mnist_tfds", tfds_features="video=frames")
    with pytest.raises(DataError, match=r"has no feature \['frames'\].*its features: \['image_sequence'\]"):
        next(iter(pipelines.eval_dataset(config, "test")))
    small = get_config("moving_mnist_tfds", height=32, width=32)
    with pytest.raises(DataError, match=r"has frames \(64, 64, 1\); the config reads \(32, 32, 1\)"):
        next(iter(pipelines.eval_dataset(small, "test")))


def test_unprepared_data_says_how_to_prepare_it(tmp_path):
    config = get_config("moving_mnist_tfds", data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"not prepared under .*Prepare it where a network is available: `tfds build"):
        next(iter(pipelines.eval_dataset(config, "test")))


def test_config_checks_the_feature_mapping():
    with pytest.raises(ValueError, match=r"tfds_features maps actions if and only if the model reads them"):
        get_config("cpu_bair_robot_pushing_small", action_dim=0)
    with pytest.raises(ValueError, match=r"tfds_splits must be NAME=VALUE entries"):
        get_config("cpu_bair_robot_pushing_small", tfds_splits="train")
    with pytest.raises(ValueError, match=r"needs tfds_name"):
        get_config("moving_mnist_tfds", tfds_name="")
