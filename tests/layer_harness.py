"""One routine every layer goes through: config round trip, eager and symbolic calls, a training step, bfloat16."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights,
    call_kwargs_fn=None,
):
    """Checks the properties every vpn_tf layer must have. `call_kwargs_fn(batch)` gives extra call tensors."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    extra = call_kwargs_fn(input_shape[0]) if call_kwargs_fn else {}

    layer = layer_cls(**init_kwargs)
    y = layer(x, **extra)
    assert tuple(y.shape) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights

    # Config round trip: same config, and the same outputs once the weights are copied.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(x, **extra)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x, **extra)), np.asarray(y))
    ser = keras.saving.serialize_keras_object(layer)
    revived = keras.saving.deserialize_keras_object(ser)
    assert type(revived) is layer_cls and revived.get_config() == config

    # Symbolic call.
    sym_in = keras.Input(shape=input_shape[1:], batch_size=None)
    sym_extra = {k: keras.Input(shape=v.shape[1:]) for k, v in extra.items()}
    sym_out = layer_cls(**init_kwargs)(sym_in, **sym_extra)
    assert tuple(sym_out.shape[1:]) == tuple(expected_output_shape[1:])

    # One training step changes every weight and keeps it finite.
    before = [w.numpy().copy() for w in layer.trainable_weights]
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, **extra)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, layer.trainable_weights, strict=False))
    for b, w in zip(before, layer.trainable_weights, strict=False):
        assert np.all(np.isfinite(w.numpy()))
        assert not np.array_equal(b, w.numpy()), f"{w.path} did not change in a training step"

    # Mixed precision: bfloat16 compute, float32 variables, finite output close to float32.
    mp = layer_cls(**init_kwargs, dtype="mixed_bfloat16") if "dtype" not in init_kwargs else None
    if mp is not None:
        mp(x, **extra)
        mp.set_weights(layer.get_weights())
        out = mp(x, **extra)
        assert all(w.dtype == "float32" for w in mp.weights)
        assert np.all(np.isfinite(np.asarray(tf.cast(out, tf.float32))))
        ref = np.asarray(tf.cast(layer(x, **extra), tf.float32))
        # bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 per operation): a few layers stay within a few
        # percent of float32 in RMS; a wrong cast or a dropped term moves the output by far more.
        err = np.sqrt(np.mean((np.asarray(tf.cast(out, tf.float32)) - ref) ** 2)) / (np.sqrt(np.mean(ref**2)) + 1e-6)
        assert err <= 0.03, f"bfloat16 output differs from float32 by {err:.3f} (RMS, relative)"
    return layer
