"""A reader of Moving MNIST frames: which digit classes a 64 x 64 frame shows (for measuring sample legibility).

Not part of the VPN: an instrument. A small CNN scores the 10 classes independently (multi-label: a frame holds
two digits, possibly of one class). A frame is "read right" when its k top-scoring classes are exactly the k
distinct classes of the digits the generator drew into it. The reader is trained on frames of the Moving MNIST
*training* stream only (`python -m datasets.moving_mnist train_reader`), never on test digits.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from vpn_tf.rng import ALG

NUM_CLASSES = 10
FRAME_SIZE = 64
WEIGHTS_FILE = "digit_reader.weights.h5"


def build_reader_network(frame_size: int = FRAME_SIZE) -> keras.Model:
    """uint8 frames `[N, 64, 64, 1]` -> 10 class logits (independent sigmoids)."""
    frames = keras.Input((frame_size, frame_size, 1), dtype="uint8", name="frames")
    x = keras.layers.Rescaling(1.0 / 255.0)(keras.ops.cast(frames, "float32"))
    for width in (32, 64, 96):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="class_logits")(x)
    return keras.Model(frames, logits, name="digit_reader")


def multi_hot(classes) -> np.ndarray:
    """int `[N, D]` digit classes -> float32 `[N, 10]` with a 1 for each class present."""
    classes = np.asarray(classes)
    out = np.zeros((classes.shape[0], NUM_CLASSES), np.float32)
    np.put_along_axis(out, classes.astype(np.int64), 1.0, axis=1)
    return out


class DigitReader:
    """Reads the digit classes of Moving MNIST frames.

    Args:
        network: the Keras model of `build_reader_network` (trained).
    """

    def __init__(self, network: keras.Model):
        self.network = network
        self.frame_size = int(network.input_shape[1])
        self._scores = tf.function(lambda x: network(x, training=False), reduce_retracing=True)

    @classmethod
    def load(cls, directory: str) -> DigitReader:
        path = os.path.join(directory, WEIGHTS_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No digit reader at {path}. Build it with: python -m datasets.moving_mnist train_reader --out "
                f"{directory}"
            )
        network = build_reader_network()
        network.load_weights(path)
        return cls(network)

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, WEIGHTS_FILE)
        self.network.save_weights(path)
        return path

    def _check(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"the digit reader reads uint8 frames. Received dtype {frames.dtype}")
        if frames.shape[-3:] != (self.frame_size, self.frame_size, 1):
            raise ValueError(
                f"the digit reader reads grey {self.frame_size} x {self.frame_size} frames [..., {self.frame_size}, "
                f"{self.frame_size}, 1] (Moving MNIST). Received shape {frames.shape}"
            )
        return frames

    def scores(self, frames, batch_size: int = 256) -> np.ndarray:
        """Class logits of uint8 frames `[..., 64, 64, 1]` -> float32 `[..., 10]`."""
        frames = self._check(frames)
        flat = frames.reshape((-1, self.frame_size, self.frame_size, 1))
        out = [self._scores(tf.constant(flat[i : i + batch_size])).numpy() for i in range(0, len(flat), batch_size)]
        out = np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)
        return out.reshape(frames.shape[:-3] + (NUM_CLASSES,))

    def read_right(self, frames, classes) -> np.ndarray:
        """Whether each frame's k top classes are exactly its sequence's k distinct digit classes.

        Args:
            frames: uint8 `[N, T, 64, 64, 1]`.
            classes: int `[N, D]`, the classes of the D digits drawn into sequence n.

        Returns:
            bool `[N, T]`.
        """
        frames = self._check(frames)
        classes = np.asarray(classes)
        if frames.ndim != 5 or classes.ndim != 2 or classes.shape[0] != frames.shape[0]:
            raise ValueError(
                f"read_right needs frames [N, T, H, W, 1] and classes [N, D] of the same N. Received {frames.shape} "
                f"and {classes.shape}"
            )
        scores = self.scores(frames)  # [N, T, 10]
        order = np.argsort(-scores, axis=-1, kind="stable")
        out = np.zeros(frames.shape[:2], bool)
        for n in range(frames.shape[0]):
            truth = set(int(c) for c in classes[n])
            top = order[n, :, : len(truth)]  # [T, k]
            out[n] = [set(int(c) for c in row) == truth for row in top]
        return out


def train_reader(frames, classes, steps: int = 2000, batch_size: int = 64, seed: int = 0, progress=False):
    """Trains a reader network on uint8 frames `[N, 64, 64, 1]` with their digit classes `[N, D]`.

    Half of each batch is read as binary frames drawn from the grey levels (Bernoulli(x / 255)), the kind of frame
    a sampler draws, so that the reader does not penalise a binary sample of a legible digit. Deterministic for a
    seed (op determinism is the caller's: `train.py`'s runs enable it, so does the CLI).
    """
    keras.utils.set_random_seed(seed)
    network = build_reader_network()
    optimizer = keras.optimizers.Adam(1e-3)
    targets = multi_hot(classes)
    frames = np.asarray(frames)
    rng = np.random.default_rng(seed)

    @tf.function
    def step(x, y, key):
        binary = tf.random.stateless_uniform(tf.shape(x), key, alg=ALG) < tf.cast(x, tf.float32) / 255.0
        half = tf.range(tf.shape(x)[0])[:, None, None, None] % 2 == 0
        x = tf.where(half, tf.cast(binary, tf.uint8) * 255, x)
        with tf.GradientTape() as tape:
            logits = network(x, training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, network.trainable_variables)
        optimizer.apply(grads, network.trainable_variables)
        return loss

    from tqdm import tqdm

    for i in tqdm(range(steps), desc="digit reader", disable=not progress):
        idx = rng.integers(0, len(frames), batch_size)
        step(tf.constant(frames[idx]), tf.constant(targets[idx]), tf.constant([seed, i], tf.int64))
    return DigitReader(network)
