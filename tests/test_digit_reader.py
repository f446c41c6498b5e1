"""The shipped digit reader (pretrained/digit_reader) reads held-out true frames, and only those."""

import os

import numpy as np
import pytest

from datasets import moving_mnist
from tests.scripts import ROOT
from vpn_tf.models.digit_reader import DigitReader, build_reader_network, multi_hot

READER_DIR = os.path.join(ROOT, "pretrained", "digit_reader")


@pytest.fixture(scope="module")
def reader():
    return DigitReader.load(READER_DIR)


@pytest.fixture(scope="module")
def held_out():
    """Frames of MNIST *test* digits (never seen by the reader) and their classes: 100 sequences of 20 frames."""
    seed = moving_mnist.TEST_SEED * 2 + 1
    video = next(iter(moving_mnist.generate("test", seed, count=100).batch(100)))["video"].numpy()
    return video, moving_mnist.digit_classes("test", seed, 100)


def test_reader_reads_held_out_true_frames_and_not_shuffled_labels(reader, held_out):
    video, classes = held_out
    right = reader.read_right(video, classes)
    assert right.shape == (100, 20)
    assert right.mean() >= 0.8
    # Negative control: the same frames against another sequence's classes are read "right" only by coincidence.
    assert reader.read_right(video, np.roll(classes, 1, axis=0)).mean() <= 0.1
    rng = np.random.default_rng(0)
    binary = np.where(rng.random(video.shape) < video / 255.0, 255, 0).astype(np.uint8)
    assert reader.read_right(binary, classes).mean() >= 0.75


def test_blank_and_noise_frames_are_not_read_right(reader, held_out):
    _, classes = held_out
    blank = np.zeros((100, 2, 64, 64, 1), np.uint8)
    noise = np.random.default_rng(1).integers(0, 2, (100, 2, 64, 64, 1)).astype(np.uint8) * 255
    assert reader.read_right(blank, classes).mean() <= 0.1
    assert reader.read_right(noise, classes).mean() <= 0.1


def test_reader_refuses_frames_of_another_size_or_dtype(reader):
    with pytest.raises(ValueError, match=r"grey 64 x 64 frames .* Received shape \(2, 3, 32, 32, 1\)"):
        reader.read_right(np.zeros((2, 3, 32, 32, 1), np.uint8), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="uint8 frames. Received dtype float32"):
        reader.scores(np.zeros((2, 64, 64, 1), np.float32))
    with pytest.raises(ValueError, match="classes \\[N, D\\] of the same N"):
        reader.read_right(np.zeros((2, 3, 64, 64, 1), np.uint8), np.zeros((3, 2), int))


def test_read_right_needs_exactly_the_distinct_classes():
    # A network whose scores are fixed: class 3 highest, then 5, then the rest.
    network = build_reader_network()
    weights = network.get_weights()
    weights = [np.zeros_like(w) for w in weights]
    weights[-1] = np.array([0, 0, 0, 9, 0, 5, 0, 0, 0, 0], np.float32)  # the dense bias
    network.set_weights(weights)
    reader = DigitReader(network)
    frames = np.zeros((5, 1, 64, 64, 1), np.uint8)
    got = reader.read_right(frames, np.array([[3, 5], [5, 3], [3, 3], [3, 7], [5, 5]]))
    # Two digits of one class: the top class alone must be it (5, 5 is read as 3: wrong).
    np.testing.assert_array_equal(got[:, 0], [True, True, True, False, False])
    np.testing.assert_array_equal(multi_hot([[3, 3]])[0], np.eye(10)[3])


def test_digit_classes_are_the_generators_digits():
    seed = moving_mnist.TEST_SEED * 2
    ds = moving_mnist.generate("test", seed, count=5, with_digit_indices=True)
    indices = np.stack([ex["digits"].numpy() for ex in ds])
    labels = moving_mnist.mnist.load("test")[1]
    np.testing.assert_array_equal(moving_mnist.test_digit_classes(5), labels[indices])
