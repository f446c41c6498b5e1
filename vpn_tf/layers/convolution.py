"""The plain 2D convolution every VPN layer is built from: Keras' `Conv2D`, lowered to the ops our devices run fastest.

Dilated convolutions have two lowerings with the same function (`dilated_conv2d`):
- "native": `tf.nn.conv2d(..., dilations=d)`. cuDNN and oneDNN run it directly. TensorFlow's default (Eigen) CPU
  kernels, used wherever oneDNN is off (CPUs without AVX-512 such as many AMD EPYCs, or `TF_ENABLE_ONEDNN_OPTS=0`),
  have a forward kernel but no backward one ("Current CPU implementations do not yet support dilation rates larger
  than 1", Conv2DBackpropFilter/Input), and oneDNN has no reduced-precision backward on CPUs without AVX-512.
- "space_to_batch": `tf.nn.convolution`'s rewrite, SpaceToBatch -> undilated convolution over d^2 sub-images ->
  BatchToSpace. Every device and dtype has kernels for it, forward and backward; it costs two extra copies of the
  tensor each way, which is why it is not the default where the native kernels exist.

"auto" (the default) probes once per (device type, dtype) whether the native forward *and* backward kernels exist,
and uses them when they do (`native_dilation_supported`). `dilation_lowering` overrides the choice in a block.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import tensorflow as tf

DILATION_LOWERINGS = ("auto", "native", "space_to_batch")
_LOWERING = {"mode": "auto"}


@contextlib.contextmanager
def dilation_lowering(mode: str):
    """Within the block (while tracing or running eagerly), dilated convolutions use `mode`.

    `mode` is one of "auto", "native" or "space_to_batch" (module docstring). Functions already traced keep the
    lowering they were traced with.
    """
    if mode not in DILATION_LOWERINGS:
        raise ValueError(f"dilation lowering must be one of {DILATION_LOWERINGS}. Received: {mode!r}")
    previous = _LOWERING["mode"]
    _LOWERING["mode"] = mode
    try:
        yield
    finally:
        _LOWERING["mode"] = previous


@functools.cache
def native_dilation_supported(device_type: str, dtype: str) -> bool:
    """Whether `device_type` ("CPU", "GPU", ...) has native dilated Conv2D kernels for `dtype`, forward and backward.

    Decided by running a 5x5 dilated convolution and its gradients once, eagerly, on that device: the kernels a
    TensorFlow build registers depend on the CPU and on `TF_ENABLE_ONEDNN_OPTS`, so asking the runtime is the only
    answer that holds on every host. The result is cached for the process.
    """
    if device_type != "CPU":
        return True  # cuDNN (GPU) and XLA devices implement dilation in both directions
    # `tf.init_scope` pauses gradient tapes, so the backward kernels are called directly.
    with tf.init_scope(), tf.device("/CPU:0"):
        x = tf.ones([1, 5, 5, 1], dtype)
        k = tf.ones([3, 3, 1, 1], dtype)
        conv = dict(strides=[1, 1, 1, 1], padding="SAME", dilations=[1, 2, 2, 1])
        try:
            y = tf.raw_ops.Conv2D(input=x, filter=k, **conv)
            tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), out_backprop=y, **conv).numpy()
            tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k, out_backprop=y, **conv).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
            return False
    return True


def _device_type(tensor) -> str:
    """The device type `tensor`'s consumers will run on: its placement, or TF's default (a GPU if there is one)."""
    device = getattr(tensor, "device", "") or ""
    if device:
        return tf.DeviceSpec.from_string(device).device_type or "CPU"
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def uses_native_dilation(inputs, dilations) -> bool:
    """The lowering `dilated_conv2d` picks for `inputs` under the current `dilation_lowering` mode."""
    if all(d == 1 for d in dilations):
        return True
    mode = _LOWERING["mode"]
    if mode != "auto":
        return mode == "native"
    return native_dilation_supported(_device_type(inputs), tf.as_dtype(inputs.dtype).name)


def dilated_conv2d(inputs, kernel, dilations, padding: str = "SAME", strides=1):
    """`[B, H, W, Cin] x [kh, kw, Cin, Cout]` convolution with `dilations` (int pair), lowered per the current
    `dilation_lowering` mode (module docstring). Both lowerings compute the same function."""
    dilations = tuple(int(d) for d in dilations)
    kernel = tf.cast(kernel, inputs.dtype)
    if uses_native_dilation(inputs, dilations):
        return tf.nn.conv2d(inputs, kernel, strides=strides, padding=padding, dilations=dilations)
    return tf.nn.convolution(inputs, kernel, strides=strides, padding=padding, dilations=dilations)


@keras.saving.register_keras_serializable(package="vpn_tf")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` (same arguments, weights and function) for channels_last, ungrouped convolutions.

    Two lowering choices, both measured by `bench/train_step.py`:
    - Dilated kernels use native dilation where the device and dtype have kernels for it, forward and backward, and
      the SpaceToBatch rewrite elsewhere (module docstring). Keras always calls `tf.nn.convolution`, i.e. always the
      rewrite: two extra copies of the tensor, forward and backward, and a convolution over 8x8 tiles at d = 8.
    - The bias is added with `tf.nn.bias_add`, the pattern TF's graph optimizer fuses into the convolution kernel
      (`_FusedConv2D`); Keras' broadcast add is a separate pass over the output.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        if (kwargs.get("data_format") or "channels_last") != "channels_last":
            raise ValueError(f"{type(self).__name__} supports only data_format='channels_last'.")
        if kwargs.get("groups", 1) != 1:
            raise ValueError(f"{type(self).__name__} does not support grouped convolution (groups != 1).")
        super().__init__(filters, kernel_size, **kwargs)

    def convolution_op(self, inputs, kernel):
        return dilated_conv2d(inputs, kernel, self.dilation_rate, self.padding.upper(), self.strides)

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
