"""The Conv2D lowering: native dilation and the SpaceToBatch rewrite compute the same function, and "auto" picks a
lowering whose kernels exist (forward and backward) on this host, whatever oneDNN's state."""

import numpy as np
import pytest
import tensorflow as tf

from vpn_tf.layers import convolution
from vpn_tf.layers.convolution import Conv2D, dilated_conv2d, dilation_lowering, native_dilation_supported


def _value_and_grads(fn, x, k, jit):
    def run(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = fn(x, k)
            # A loss whose gradient needs y, so neither direction of the convolution can be pruned.
            loss = tf.reduce_sum(tf.sin(y) * y)
        return (y, *tape.gradient(loss, [x, k]))

    return tf.function(run, jit_compile=jit)(x, k)


@pytest.mark.parametrize("dilation", [2, 4, 8])
def test_space_to_batch_equals_native_dilation_forward_and_backward(dilation):
    rng = np.random.default_rng(dilation)
    x = tf.constant(rng.normal(size=(2, 19, 13, 5)), tf.float32)  # odd sizes: SpaceToBatch pads to a multiple of d
    k = tf.constant(rng.normal(size=(3, 3, 5, 4)) / 5, tf.float32)

    def conv(mode):
        def fn(x, k):
            with dilation_lowering(mode):
                return dilated_conv2d(x, k, (dilation, dilation))

        return fn

    rewritten = _value_and_grads(conv("space_to_batch"), x, k, jit=False)
    # XLA compiles native dilation forward and backward on every CPU, so the reference exists on every host.
    native = _value_and_grads(conv("native"), x, k, jit=True)
    for a, b, name in zip(rewritten, native, ("output", "d/dx", "d/dkernel"), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
    # And the reference itself is the dilated convolution: compare with numpy at one output pixel.
    i, j, d = 9, 6, dilation
    xp = np.pad(x.numpy(), ((0, 0), (d, d), (d, d), (0, 0)))
    patch = xp[:, i : i + 2 * d + 1 : d, j : j + 2 * d + 1 : d, :]
    np.testing.assert_allclose(np.einsum("bhwc,hwco->bo", patch, k.numpy()), native[0][:, i, j], rtol=1e-4, atol=1e-4)
    if native_dilation_supported("CPU", "float32"):
        eager_native = _value_and_grads(conv("native"), x, k, jit=False)
        for a, b in zip(rewritten, eager_native, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_auto_lowering_trains_in_every_dtype(dtype):
    layer = Conv2D(6, 3, dilation_rate=4, padding="same", dtype=f"mixed_{dtype}" if dtype != "float32" else None)
    x = tf.random.stateless_normal((2, 16, 16, 3), seed=(1, 2))
    layer.build(x.shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return y, tape.gradient(loss, layer.trainable_variables)

    y, grads = step(x)
    assert y.dtype == dtype and all(np.all(np.isfinite(g.numpy())) for g in grads)
    with dilation_lowering("space_to_batch"):
        expected = layer(x)
    tol = 1e-5 if dtype == "float32" else 0.05
    np.testing.assert_allclose(
        tf.cast(y, tf.float32).numpy(), tf.cast(expected, tf.float32).numpy(), rtol=tol, atol=tol
    )


def test_auto_uses_native_kernels_where_they_exist():
    x32 = tf.zeros((1, 4, 4, 1))
    assert convolution.uses_native_dilation(x32, (1, 1))  # undilated: always the direct kernel
    assert convolution.uses_native_dilation(x32, (2, 2)) == native_dilation_supported("CPU", "float32")
    with dilation_lowering("space_to_batch"):
        assert not convolution.uses_native_dilation(x32, (2, 2))
    with dilation_lowering("native"):
        assert convolution.uses_native_dilation(x32, (2, 2))
    assert native_dilation_supported("GPU", "float16")
    with pytest.raises(ValueError, match="dilation lowering must be one of"):
        with dilation_lowering("im2col"):
            pass


def test_probe_matches_the_runtime():
    """The cached probe's answer is what running the native backward kernels eagerly says."""
    x, k = tf.ones((1, 6, 6, 2)), tf.ones((3, 3, 2, 2))
    with tf.GradientTape() as tape:
        tape.watch(k)
        y = tf.nn.conv2d(x, k, 1, "SAME", dilations=2)
    try:
        tape.gradient(y, k).numpy()
        works = True
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        works = False
    assert works == native_dilation_supported("CPU", "float32")
