import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from vpn_tf.layers import ConvLSTM


def _pair(filters=4, steps=3, channels=5, size=6, seed=0):
    """Our ConvLSTM and Keras' with the same (non-trivial) weights, plus an input sequence."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, steps, size, size, channels)).astype("float32")
    ours = ConvLSTM(filters, 3, bias_initializer="random_normal")
    ref = keras.layers.ConvLSTM2D(filters, 3, padding="same", return_sequences=True)
    ours(x)
    ref(x)
    ref.set_weights(ours.get_weights())
    return ours, ref, x


def test_matches_keras_conv_lstm2d_with_the_same_weights():
    ours, ref, x = _pair()
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)
    # Same variables in the same order: checkpoints of one load into the other.
    assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in ref.weights]


def test_unknown_number_of_steps_runs_a_while_loop_with_the_same_result():
    ours, _, x = _pair(steps=4)
    fn = tf.function(ours.call, input_signature=[tf.TensorSpec([None, None, 6, 6, 5], tf.float32)])
    np.testing.assert_allclose(fn(x).numpy(), ours(x).numpy(), rtol=1e-6, atol=1e-6)


def test_step_by_step_equals_the_sequence_call_and_is_causal_in_time():
    ours, _, x = _pair(steps=4)
    full = ours(x).numpy()
    state = ours.zero_state(2, 6, 6, tf.float32)
    for t in range(4):
        state = ours.step(tf.constant(x[:, t]), state)
        np.testing.assert_allclose(state[0].numpy(), full[:, t], rtol=1e-5, atol=1e-5)
    # Changing frame 2 changes nothing before step 2 and something from step 2 on.
    x2 = x.copy()
    x2[:, 2] += 1.0
    changed = ours(x2).numpy()
    np.testing.assert_array_equal(changed[:, :2], full[:, :2])
    assert np.all(np.abs(changed[:, 2:] - full[:, 2:]).max(axis=(0, 2, 3, 4)) > 1e-4)


def test_gradients_match_keras():
    ours, ref, x = _pair()
    grads = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(x)))
        grads.append([g.numpy() for g in tape.gradient(loss, layer.trainable_weights)])
    for g_ours, g_ref in zip(*grads, strict=True):
        np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-4)


def test_layer_harness():
    run_layer_test(
        ConvLSTM,
        dict(filters=3, kernel_size=3),
        input_shape=(2, 3, 5, 5, 4),
        expected_output_shape=(2, 3, 5, 5, 3),
        expected_num_trainable_weights=3,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(padding="valid"), "padding='same'"),
        (dict(dropout=0.1), "dropout=0.0"),
        (dict(return_sequences=False), "return_sequences=True"),
        (dict(strides=2), "strides=1"),
    ],
)
def test_unsupported_options_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvLSTM(3, 3, **kwargs)
