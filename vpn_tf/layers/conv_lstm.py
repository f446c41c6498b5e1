"""The ConvLSTM that carries time (§3 of the VPN paper), computed the fast way for teacher-forced training."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="vpn_tf")
class ConvLSTM(keras.layers.ConvLSTM2D):
    """`keras.layers.ConvLSTM2D` (same weights, gate order i, f, c, o, same function) evaluated in fewer, larger ops.

    Keras' cell runs eight convolutions per time step: the input and the recurrent kernels split into their four
    gates. The input convolution does not depend on the recurrence, so here it runs once for all time steps (time
    folded into the batch: one convolution with 4L outputs over batch x T frames), and each step runs a single
    recurrent convolution L -> 4L: fewer, larger convolutions, which oneDNN runs faster on our CPU
    (`bench/train_step.py`, A/B). The weights (`cell.kernel`, `cell.recurrent_kernel`, `cell.bias`) are the Keras
    layer's, so checkpoints of either load into the other.

    Only what the VPN uses is supported: "same" padding, stride 1, channels_last, full sequences returned, no
    dropout, masking, statefulness or reversal; anything else raises at construction.

    Args:
        filters: L, the hidden and cell channels.
        kernel_size: spatial kernel of both convolutions.
        **kwargs: other `keras.layers.ConvLSTM2D` arguments (initializers, activations, `unit_forget_bias`, ...).

    Call arguments:
        sequences: `[batch, time, height, width, channels]`; `time` may be unknown (a `tf.while_loop` then runs).

    Returns:
        `[batch, time, height, width, filters]`: the hidden state after every step, starting from zeros.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kwargs.setdefault("padding", "same")
        kwargs.setdefault("return_sequences", True)
        unsupported = {
            "padding": ("same", kwargs["padding"]),
            "return_sequences": (True, kwargs["return_sequences"]),
            "return_state": (False, kwargs.get("return_state", False)),
            "go_backwards": (False, kwargs.get("go_backwards", False)),
            "stateful": (False, kwargs.get("stateful", False)),
            "dropout": (0.0, kwargs.get("dropout", 0.0)),
            "recurrent_dropout": (0.0, kwargs.get("recurrent_dropout", 0.0)),
            "data_format": ("channels_last", kwargs.get("data_format") or "channels_last"),
            "strides": (1, kwargs.get("strides", 1)),
            "dilation_rate": (1, kwargs.get("dilation_rate", 1)),
        }
        for name, (needed, received) in unsupported.items():
            if received not in (needed, (needed, needed), [needed, needed]):
                raise ValueError(f"ConvLSTM supports only {name}={needed!r}. Received: {name}={received!r}")
        super().__init__(filters, kernel_size, **kwargs)

    def _convolve(self, x, kernel):
        return tf.nn.conv2d(x, tf.cast(kernel, x.dtype), 1, "SAME")

    def input_projection(self, frames):
        """Input convolution plus bias for frames `[N, H, W, channels]` -> `[N, H, W, 4L]` (all gates)."""
        z = self._convolve(frames, self.cell.kernel)
        if self.cell.use_bias:
            z = tf.nn.bias_add(z, tf.cast(self.cell.bias, z.dtype))
        return z

    def recurrence(self, projected, state):
        """One step from the input projection of frame t: (h, c) -> (h', c')."""
        h, c = state
        z = projected + self._convolve(h, self.cell.recurrent_kernel)
        i, f, g, o = tf.split(z, 4, axis=-1)
        act, gate = self.cell.activation, self.cell.recurrent_activation
        c = gate(f) * c + gate(i) * act(g)
        return gate(o) * act(c), c

    def step(self, frame, state):
        """One step from frame t itself `[batch, H, W, channels]` (sampling): (h, c) -> (h', c')."""
        return self.recurrence(self.input_projection(frame), state)

    def zero_state(self, batch, height, width, dtype):
        zeros = tf.zeros([batch, height, width, self.filters], dtype)
        return zeros, zeros

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is not None or mask is not None:
            raise ValueError("ConvLSTM takes neither `initial_state` nor `mask`; it always starts from zeros.")
        sequences = tf.convert_to_tensor(sequences)
        shape = tf.shape(sequences)
        batch, steps = shape[0], shape[1]
        h, w, ch = sequences.shape[2], sequences.shape[3], sequences.shape[4]
        projected = self.input_projection(tf.reshape(sequences, [-1, h, w, ch]))
        projected = tf.reshape(projected, [batch, steps, h, w, 4 * self.filters])
        state = self.zero_state(batch, h, w, projected.dtype)
        static_steps = sequences.shape[1]
        if static_steps is not None:
            # Unrolled: the steps' backward passes need no stacks, and the executor can overlap adjacent work.
            # `unstack`, not `projected[:, t]`: a slice's gradient is a zero-padded full-size tensor per step.
            outputs = []
            for projected_t in tf.unstack(projected, axis=1):
                state = self.recurrence(projected_t, state)
                outputs.append(state[0])
            return tf.stack(outputs, axis=1)

        # Time-major TensorArrays (not `projected[:, t]`, whose gradient is a full-size tensor per step).
        inputs = tf.TensorArray(projected.dtype, size=steps).unstack(tf.transpose(projected, [1, 0, 2, 3, 4]))

        def body(t, state, outputs):
            state = self.recurrence(inputs.read(t), state)
            return t + 1, state, outputs.write(t, state[0])

        outputs = tf.TensorArray(projected.dtype, size=steps, element_shape=[None, h, w, self.filters])
        _, _, outputs = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), state, outputs))
        return tf.transpose(outputs.stack(), [1, 0, 2, 3, 4])
