"""Cached generation of one frame: the decoder's own `forward`, one pixel at a time, from activation caches.

This is Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive Models", for masked convolutions
with colour groups. The decoder's math is not restated here: `CachedDecoder` runs `PixelCNNDecoder.forward` (and
through it every block's and the head's `forward`) with a pixel stepper (`vpn_tf.layers.stepping`) that evaluates
each convolution at the current pixel, reading the causal part of its receptive window from a per-convolution cache
of its inputs. What does not depend on the frame's pixels (the context's projections, conditioning biases) is
computed once per frame, before the loop. A pixel takes one pass through the layers per colour; the colour groups
make pass c exact for colour c.

Two loops evaluate the convolutions:
- "pixel": one `tf.while_loop` over the frame's pixels; each pass writes the convolution inputs at the pixel into
  caches `[H + r, W + 2r, B, cin]` and contracts the r + 1 rows up to the centre. Best under XLA, which fuses the
  small ops and updates the caches in place.
- "row": a loop over rows around a loop over the row's pixels. The taps on the r rows above a pixel read inputs
  that are complete when its row starts, so they are computed for the whole row at once; per pixel only the centre
  row's taps remain, from a window of the r inputs to the left that the loop carries from pixel to pixel. Few, cheap
  ops per pixel, which is what counts without XLA, where each op is dispatched on its own.

No `tf.Variable` is written, so concurrent calls (e.g. TF Serving) are safe.
"""

from __future__ import annotations

import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.layers.stepping import effective_kernel
from vpn_tf.models.vpn import scale_pixels
from vpn_tf.sampling.noise import draw_from, draw_noise, pixel_noise

LOOPS = ("pixel", "row")


class _Conv:
    """One convolution of the decoder's pass, as the pixel loops evaluate it (r = k // 2; 1x1 convolutions: r = 0).

    The masked kernel's rows below the centre and its taps right of the centre are zero, so only the rows up to the
    centre (`kernel`), split into the rows above (`above_kernel`) and the centre row's taps at and left of the
    centre (`centre_kernel`, one row per (tap, cin), taps left to right) are kept.
    """

    def __init__(self, layer, bias: bool):
        kh, kw = layer.kernel_size
        if tuple(layer.dilation_rate) != (1, 1) or kh != kw:
            raise ValueError(f"cached sampling supports square undilated decoder kernels; {layer.name} is not")
        self.layer = layer
        self.r, self.k = kh // 2, kh
        kernel = effective_kernel(layer)
        self.dtype = kernel.dtype
        self.cin, self.cout = int(kernel.shape[2]), int(kernel.shape[3])
        self.kernel = kernel[: self.r + 1]
        self.above_kernel = kernel[: self.r]
        self.centre_kernel = tf.reshape(kernel[self.r, : self.r + 1], [(self.r + 1) * self.cin, self.cout])
        self.bias = tf.cast(layer.bias, self.dtype) if bias and layer.use_bias else None

    @property
    def window_width(self) -> int:
        return self.r * self.cin

    def empty_cache(self, batch, height, width):
        return tf.zeros([height + self.r, width + 2 * self.r, batch, self.cin], self.dtype) if self.r else None

    def _plus_bias(self, out):
        return out if self.bias is None else tf.nn.bias_add(out, self.bias)

    # --- pixel loop ---

    def write(self, cache, i, j, value):
        """Stores `value` [B, cin] as the input at pixel (i, j)."""
        return tf.tensor_scatter_nd_update(cache, [[i + self.r, j + self.r]], value[None])

    def at(self, cache, i, j):
        """The convolution's output at pixel (i, j) from its cache: `[B, cout]`."""
        window = tf.slice(cache, [i, j, 0, 0], [self.r + 1, self.k, -1, -1])  # [r+1, k, B, cin]
        return self._plus_bias(tf.einsum("hwbc,hwcd->bd", window, self.kernel))

    # --- row loop ---

    def above(self, cache, i, width):
        """The bias (if any) plus the taps on rows i - r .. i - 1 for every pixel of row i: `[W, B, cout]` (r > 0)."""
        strip = tf.slice(cache, [i, 0, 0, 0], [self.r, -1, -1, -1])  # [r, W + 2r, B, cin]
        shifted = tf.stack([strip[:, w : w + width] for w in range(self.k)], axis=1)  # [r, k, W, B, cin]
        out = tf.einsum("hkwbc,hkcd->wbd", shifted, self.above_kernel)
        return out if self.bias is None else out + self.bias

    def centre(self, window, current, kernel):
        """The centre row's taps at the pixel `[B, cout]`, from the `window` of the r inputs to its left and the
        pixel's own input `current` `[B, cin]`."""
        return tf.matmul(tf.concat([window, current], axis=1) if self.r else current, kernel)

    def next_window(self, window, current):
        """The pieces of the next pixel's window: this one's without its leftmost input, then `current`."""
        if self.r == 0:
            return []
        return [current] if self.r == 1 else [window[:, self.cin :], current]

    def store_row(self, cache, i, row):
        """Writes row i's inputs `[W, B, cin]` into the cache."""
        row = tf.pad(row, [[self.r, self.r], [0, 0], [0, 0]])
        return tf.tensor_scatter_nd_update(cache, [[i + self.r]], row[None])


class _Recorder:
    """A stepper for one pass at a notional pixel, outside the loop: it learns the decoder's convolutions (in call
    order) and computes the frame maps once. Its convolution outputs are zeros: only the plan is kept."""

    pixelwise = True
    fuse_gating = False

    def __init__(self):
        self.convs: list[_Conv] = []
        self.maps = []  # leaf tensors of every frame_map, in call order
        self.map_calls = []  # (structure, leaf indices into `maps` or None) per frame_map call

    def conv(self, layer, x, bias=True):
        conv = _Conv(layer, bias)
        self.convs.append(conv)
        return tf.zeros(tf.stack([tf.shape(x)[0], conv.cout]), conv.dtype)

    def frame_map(self, fn):
        value = fn()
        leaves, indices = [], []
        for t in tf.nest.flatten(value):
            if t is None:
                indices.append(None)
                leaves.append(None)
                continue
            indices.append(len(self.maps))
            self.maps.append(t)
            leaves.append(t[:, 0, 0])
        self.map_calls.append((value, indices))
        return tf.nest.pack_sequence_as(value, leaves)

    def apply(self, layer, *args, **kwargs):
        return layer.forward(*args, stepper=self, **kwargs)


class _PixelStepper:
    """Replays the recorded pass at one pixel: convolution n of the pass is `convs[n]`, frame map m the recorded
    map's value at the pixel (`values[m]`, `[B, C]`). Subclasses evaluate the convolutions."""

    pixelwise = True
    fuse_gating = False

    def __init__(self, recorder: _Recorder, values):
        self.convs, self.map_calls, self.values = recorder.convs, recorder.map_calls, values
        self.n = self.m = 0

    def begin_pass(self):
        self.n = self.m = 0

    def conv(self, layer, x, bias=True):
        n, self.n = self.n, self.n + 1
        return self.conv_at(n, x)

    def frame_map(self, fn):
        structure, indices = self.map_calls[self.m]
        self.m += 1
        return tf.nest.pack_sequence_as(structure, [None if k is None else self.values[k] for k in indices])

    def apply(self, layer, *args, **kwargs):
        return layer.forward(*args, stepper=self, **kwargs)


class _PixelLoopStepper(_PixelStepper):
    def __init__(self, recorder, values, caches, i, j):
        super().__init__(recorder, values)
        self.caches, self.i, self.j = caches, i, j

    def conv_at(self, n, x):
        conv = self.convs[n]
        if conv.r == 0:
            return conv._plus_bias(tf.matmul(x, conv.centre_kernel))
        self.caches[n] = conv.write(self.caches[n], self.i, self.j, x)
        return conv.at(self.caches[n], self.i, self.j)


class _RowLoopStepper(_PixelStepper):
    def __init__(self, recorder, values, windows, aboves, kernels):
        super().__init__(recorder, values)
        self.windows, self.aboves, self.kernels = windows, aboves, kernels
        self.current = [None] * len(self.convs)

    def conv_at(self, n, x):
        conv = self.convs[n]
        self.current[n] = x
        if conv.r == 0:
            return conv._plus_bias(tf.matmul(x, self.kernels[n]))
        # AddN, not AddV2: oneDNN's graph rewrite fuses MatMul + AddV2 into a MatMul with a bias and then rejects
        # the 2-D addend at run time when a batch group has one row ("bias must be 1-dimensional"; TF 2.21).
        return tf.add_n([conv.centre(self.windows[n], x, self.kernels[n]), self.aboves[n]])


def _pack(tensors: list):
    """Stacks the tensors of equal shape and dtype: (stacks, unpack), `unpack(stacks)` -> the same list.

    For the row loop's pixel body. Without XLA a `tf.while_loop` passes every tensor its body captures from
    iteration to iteration as a loop variable (Merge, Switch, Identity and NextIteration ops each time); a stack of
    eight kernels is one such variable plus one Unpack per pixel, which shares the stack's buffer.
    """
    groups = {}
    for k, t in enumerate(tensors):
        groups.setdefault((tuple(t.shape), t.dtype), []).append(k)
    keys = list(groups.values())
    stacks = [tf.stack([tensors[k] for k in ks]) if len(ks) > 1 else tensors[ks[0]] for ks in keys]

    def unpack(stacks):
        out = [None] * len(tensors)
        for ks, stack in zip(keys, stacks, strict=True):
            for k, t in zip(ks, tf.unstack(stack) if len(ks) > 1 else [stack], strict=True):
                out[k] = t
        return out

    return stacks, unpack


class CachedDecoder:
    """Samples frames from a built VPN's `PixelCNNDecoder` one pixel at a time (module docstring).

    Args:
        model: a built VPN.
        loop: "pixel" (best under XLA) or "row" (best without it). Same conditionals either way, up to float
            rounding of the summation order.
    """

    def __init__(self, model, loop: str = "row"):
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}. Received: loop={loop!r}")
        self.model = model
        self.config: VPNConfig = model.config
        self.dtype = model.compute_dtype
        self.loop = loop

    def _record(self, context, cond, batch):
        """One recording pass (outside the loop): the convolutions, and every frame map computed once. Returns the
        recorder, the per-pixel maps packed as `[H, W, B, D]` (or None), their widths, and the per-frame constants
        (`[B, C]`, for maps without spatial extent) by map index."""
        recorder = _Recorder()
        pixel = tf.zeros(tf.stack([batch, self.config.channels]), self.dtype)
        self.model.decoder.forward(pixel, context, cond, recorder)
        if recorder.convs[0].layer is not self.model.decoder.frame_input:
            raise ValueError("the decoder's first convolution must read the frame (its type-A input layer)")
        spatial, constants = [], {}
        for k, t in enumerate(recorder.maps):
            if t.shape[1] == 1 and t.shape[2] == 1:
                constants[k] = tf.cast(t[:, 0, 0], self.dtype)
            else:
                spatial.append(k)
        packed = tf.concat([tf.transpose(recorder.maps[k], [1, 2, 0, 3]) for k in spatial], -1) if spatial else None
        widths = [int(recorder.maps[k].shape[-1]) for k in spatial]
        return recorder, spatial, packed, widths, constants

    @staticmethod
    def _values(spatial, pieces, constants):
        values = dict(constants)
        values.update(zip(spatial, pieces, strict=True))
        return values

    def _draw_pixel(self, stepper, context, cond, noise, temperature, batch):
        """Draws the pixel's colours in order R -> G -> B, one pass of the decoder's `forward` each. Returns uint8
        `[B, C]`, the logits `[B, C, K]` each colour was drawn from, and the pixel's scaled colours `[B, C]`."""
        c, ch = self.config, self.config.channels
        drawn, used, known = [], [], []
        for colour in range(ch):
            stepper.begin_pass()
            pixel = tf.concat(known + [tf.zeros(tf.stack([batch, ch - colour]), self.dtype)], 1)
            logits = self.model.decoder.forward(pixel, context, cond, stepper)  # [B, C, K] float32
            v = draw_from(c, logits[:, colour], noise[:, colour], temperature)
            drawn.append(v)
            used.append(logits[:, colour])
            known.append(scale_pixels(v, self.dtype)[:, None])
        return tf.stack(drawn, axis=-1), tf.stack(used, axis=1), tf.concat(known, axis=1)

    def generate_frame(self, h, cond_t, seed_t, temperature, batch_offset=0, return_logits=False):
        """Samples one frame given the decoder's context `h` for it (`VideoPixelNetwork.decoder_context`): uint8
        `[B, H, W, C]`. `batch_offset`: the index of `h`'s first row in the whole batch when sampling a group of
        rows (see `pixel_noise`).

        With `return_logits`, also returns the float32 logits `[B, H, W, C, K]` each dimension was drawn from (for
        tests and diagnostics: they must equal the teacher-forced conditionals on the sampled video)."""
        c = self.config
        height, width, ch = c.frame_shape
        batch = tf.shape(h)[0]
        context = tf.cast(h, self.dtype)
        cond = None if cond_t is None else tf.cast(cond_t, self.dtype)
        record = self._record(context, cond, batch)
        frame = tf.zeros(tf.stack([height, width, batch, ch]), tf.uint8)
        drawn_from = tf.TensorArray(tf.float32, size=height * width if return_logits else 0)
        loop = self._pixel_loop if self.loop == "pixel" else self._row_loop
        frame, drawn_from = loop(
            frame, drawn_from, record, context, cond, seed_t, temperature, batch, batch_offset, return_logits
        )
        frame = tf.transpose(frame, [2, 0, 1, 3])
        if not return_logits:
            return frame
        logits = tf.reshape(drawn_from.stack(), tf.stack([height, width, batch, ch, c.num_classes]))
        return frame, tf.transpose(logits, [2, 0, 1, 3, 4])

    def _pixel_loop(self, frame, drawn_from, record, context, cond, seed_t, temperature, batch, offset, keep_logits):
        c = self.config
        height, width = c.height, c.width
        recorder, spatial, packed, widths, constants = record
        caches = [conv.empty_cache(batch, height, width) for conv in recorder.convs]
        slots = [k for k, cache in enumerate(caches) if cache is not None]

        def body(index, frame, drawn_from, *live):
            i, j = index // width, index % width
            pieces = tf.split(packed[i, j], widths, axis=-1) if packed is not None else []
            all_caches = [None] * len(caches)
            for k, cache in zip(slots, live, strict=True):
                all_caches[k] = cache
            stepper = _PixelLoopStepper(recorder, self._values(spatial, pieces, constants), all_caches, i, j)
            noise = draw_noise(c, pixel_noise(c, seed_t, index, batch, offset))
            values, used, full = self._draw_pixel(stepper, context, cond, noise, temperature, batch)
            # The frame's input at the pixel holds every colour for the pixels after it (the passes saw zeros for
            # the colours not yet drawn).
            if stepper.caches[0] is not None:
                stepper.caches[0] = recorder.convs[0].write(stepper.caches[0], i, j, full)
            frame = tf.tensor_scatter_nd_update(frame, [[i, j]], values[None])
            if keep_logits:
                drawn_from = drawn_from.write(index, used)
            return (index + 1, frame, drawn_from, *[stepper.caches[k] for k in slots])

        out = tf.while_loop(
            lambda index, *_: index < height * width,
            body,
            (tf.constant(0), frame, drawn_from, *[caches[k] for k in slots]),
            parallel_iterations=1,
        )
        return out[1], out[2]

    def _row_loop(self, frame, drawn_from, record, context, cond, seed_t, temperature, batch, offset, keep_logits):
        c = self.config
        height, width, ch = c.frame_shape
        recorder, spatial, packed, widths, constants = record
        convs = recorder.convs
        caches = [conv.empty_cache(batch, height, width) for conv in convs]
        slots = [k for k, cache in enumerate(caches) if cache is not None]
        window_widths = [convs[k].window_width for k in slots]
        packed_kernels, unpack = _pack([conv.centre_kernel for conv in convs])
        above_widths = [convs[k].cout for k in slots]

        def row_body(i, frame, drawn_from, *live):
            # Everything of row i that does not depend on its own pixels, as one [W, B, D] tensor: the spatial
            # convolutions' taps on the rows above (biases included) and the frame maps' row; per pixel, one
            # gather and one split hand every layer its piece.
            aboves = [convs[k].above(cache, i, width) for k, cache in zip(slots, live, strict=True)]
            row_terms = tf.concat(aboves + ([packed[i]] if packed is not None else []), axis=-1)
            noise_row = draw_noise(c, pixel_noise(c, seed_t, i * width + tf.range(width), batch, offset))
            values = tf.TensorArray(tf.uint8, size=width, element_shape=[None, ch])
            inputs = tf.TensorArray(self.dtype, size=width, element_shape=[None, sum(window_widths)])
            window = tf.zeros(tf.stack([batch, sum(window_widths)]), self.dtype)  # the left "same" padding

            def pixel_body(j, values, drawn_from, inputs, window):
                pieces = tf.split(tf.gather(row_terms, j), above_widths + widths, axis=-1)
                above_at = [None] * len(convs)
                for k, piece in zip(slots, pieces[: len(slots)], strict=True):
                    above_at[k] = piece
                windows = [None] * len(convs)
                for k, w in zip(slots, tf.split(window, window_widths, axis=1) if slots else [], strict=True):
                    windows[k] = w
                maps = self._values(spatial, pieces[len(slots) :], constants)
                stepper = _RowLoopStepper(recorder, maps, windows, above_at, unpack(packed_kernels))
                pixel_values, used, full = self._draw_pixel(
                    stepper, context, cond, tf.gather(noise_row, j), temperature, batch
                )
                stepper.current[0] = full  # the frame's input at the pixel, every colour known
                values = values.write(j, pixel_values)
                if keep_logits:
                    drawn_from = drawn_from.write(i * width + j, used)
                pieces = [p for k in slots for p in convs[k].next_window(windows[k], stepper.current[k])]
                window = tf.concat(pieces, axis=1) if pieces else window
                return j + 1, values, drawn_from, inputs.write(j, window), window

            _, values, drawn_from, inputs, _ = tf.while_loop(
                lambda j, *_: j < width,
                pixel_body,
                (tf.constant(0), values, drawn_from, inputs, window),
                parallel_iterations=1,
            )
            rows = tf.split(inputs.stack(), window_widths, axis=-1) if slots else []  # [W, B, r * cin] each
            live = [
                convs[k].store_row(cache, i, row[..., row.shape[-1] - convs[k].cin :])
                for k, cache, row in zip(slots, live, rows, strict=True)
            ]
            frame = tf.tensor_scatter_nd_update(frame, [[i]], values.stack()[None])
            return (i + 1, frame, drawn_from, *live)

        out = tf.while_loop(
            lambda i, *_: i < height,
            row_body,
            (tf.constant(0), frame, drawn_from, *[caches[k] for k in slots]),
            parallel_iterations=1,
        )
        return out[1], out[2]
