"""Ancestral sampling from a VPN: frames in time order, pixels in raster order, colours R -> G -> B.

Every dimension is drawn from its conditional with stateless random numbers keyed by a user `seed[2]`: frame t has
the key `fold_in(seed, t)` and pixel (i, j) hashes that key with i * W + j (see `pixel_noise`), so the same seed gives
the same video and different seeds give different videos, whichever implementation runs, with or without XLA:

- `method="naive"`: the reference. For every dimension it reruns the whole teacher-forced decoder on the partly
  generated frame and reads the one conditional it needs (H * W * C decoder passes per frame).
- `method="cached"`: the fast path. The encoder and ConvLSTM run once per frame. The decoder computes, for each new
  pixel, only that pixel's activations in every layer, reading the (causal part of the) receptive window of each
  spatial convolution from per-layer activation caches carried as `tf.while_loop` loop variables. No `tf.Variable`
  is written, so concurrent calls (e.g. TF Serving) are safe. This is Ramachandran et al. 2017, "Fast Generation for
  Convolutional Autoregressive Models", for plain masked convolutions with colour groups: a pixel takes one pass per
  colour through its column of layers (the colour groups make pass c exact for colour c).

Moving MNIST (sigmoid) models draw Bernoulli pixels: 255 with probability sigmoid(logit / temperature), else 0 — the
model's likelihood treats grey levels as probabilities, so sampled frames are binary. Softmax models draw each colour
from its 256-way categorical (Gumbel-max with the stateless noise; never argmax of the logits). The baseline model
samples all pixels of a frame at once (its conditionals do not depend on the frame).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.devices import set_tf32
from vpn_tf.layers.relu_residual_block import ReLUResidualBlock
from vpn_tf.layers.residual_multiplicative_block import ResidualMultiplicativeBlock
from vpn_tf.models.vpn import scale_pixels

# Counter-based RNG named explicitly: the default "auto_select" may pick another algorithm under XLA or on GPU,
# which would change samples and data across devices.
ALG = "philox"


METHODS = ("cached", "naive")


# ---------------------------------------------------------------------------------------------------------------------
# Randomness and drawing one dimension
# ---------------------------------------------------------------------------------------------------------------------


def frame_seed(seed, t):
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), tf.cast(t, tf.int64), alg=ALG)


def _mix32(x):
    """A 32-bit avalanche hash (the "lowbias32" finaliser): every input bit flips each output bit with p ~ 1/2."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def pixel_noise(config: VPNConfig, seed_t, index, batch, batch_offset=0):
    """Uniform noise in (0, 1) for pixel `index` (= i * W + j) of a frame: `[batch, C, K]` (K = 1 for sigmoid); for a
    vector of pixel indices `[N]`, `[N, batch, C, K]` (the same numbers, pixel by pixel).

    The frame key `seed_t` comes from TensorFlow's stateless RNG (`frame_seed`). Within the frame, noise is a
    counter-based integer hash of (key, pixel, element) rather than `tf.random.stateless_uniform`, because XLA's
    stateless RNG kernels produce different streams from the non-XLA kernels: samples would otherwise change with
    `jit`. The hash is plain 32-bit integer arithmetic, identical on every device and compiler; 24 bits of it make
    each uniform (the Gumbel noise of a softmax draw is therefore capped at ~17 instead of ~36: immaterial).
    `batch_offset` is the first row's index in the whole batch, so a group of rows sampled on its own gets the
    noise those rows get in the whole batch.
    """
    words = tf.reshape(tf.bitcast(tf.cast(seed_t, tf.int64), tf.uint32), [4])
    index = tf.convert_to_tensor(index)
    key = _mix32(tf.cast(index, tf.uint32) + tf.constant(0x9E3779B9, tf.uint32))
    for w in tf.unstack(words):
        key = _mix32(tf.bitwise.bitwise_xor(key, w))
    key = key[..., None]  # one key per pixel, broadcast over the pixel's elements
    n = config.channels * config.num_classes
    counter = tf.cast(tf.range(batch * n) + tf.cast(batch_offset, tf.int32) * n, tf.uint32)
    bits = _mix32(tf.bitwise.bitwise_xor(_mix32(counter * tf.constant(0x85EBCA6B, tf.uint32) + key), key))
    u = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) + 0.5) * (1.0 / (1 << 24))
    shape = tf.concat([tf.shape(index), tf.stack([batch, config.channels, config.num_classes])], axis=0)
    return tf.reshape(u, shape)


def draw_noise(config: VPNConfig, noise):
    """What `draw_from` compares the logits with, from uniform `noise`: the noise itself for sigmoid outputs, Gumbel
    noise for softmax ones. Elementwise, so the row loop transforms a whole row's noise at once."""
    if config.output == "sigmoid":
        return noise
    return -tf.math.log(-tf.math.log(noise))


def draw_from(config: VPNConfig, logits, noise, temperature):
    """Samples uint8 values from logits `[..., K]` with matching `draw_noise` output `[..., K]` -> `[...]`."""
    logits = tf.cast(logits, tf.float32) / temperature
    if config.output == "sigmoid":
        return tf.where(
            noise[..., 0] < tf.sigmoid(logits[..., 0]), tf.constant(255, tf.uint8), tf.constant(0, tf.uint8)
        )
    return tf.cast(tf.argmax(logits + noise, axis=-1), tf.uint8)


def draw(config: VPNConfig, logits, noise, temperature):
    """Samples uint8 values from logits `[..., K]` with matching uniform `noise` `[..., K]` -> `[...]`."""
    return draw_from(config, logits, draw_noise(config, noise), temperature)


# ---------------------------------------------------------------------------------------------------------------------
# Temporal part: encoder + ConvLSTM, once per frame
# ---------------------------------------------------------------------------------------------------------------------


def frame_conditions(config: VPNConfig, actions, states, num_total, batch):
    """Per-frame conditioning `[batch, num_total, D]` as in training (§6.1), or None."""
    if not config.conditional:
        return None
    parts = []
    if config.action_dim:
        parts.append(tf.cast(actions[:, :num_total], tf.float32))
    if config.state_dim:
        ctx = tf.cast(states[:, : config.context_frames], tf.float32)
        n_ctx = tf.shape(ctx)[1]
        parts.append(tf.concat([ctx, tf.zeros([batch, num_total - n_ctx, config.state_dim])], axis=1))
    return tf.concat(parts, axis=-1)


def recent_frames(config: VPNConfig, video):
    """The last `decoder_past_frames` frames of uint8 `video` `[B, T, H, W, C]`, most recent first, black where the
    video is shorter: `[B, k, H, W, C]` (what `VideoPixelNetwork.decoder_context` reads; k = 0 gives an empty
    tensor)."""
    k = config.decoder_past_frames
    video = tf.convert_to_tensor(video)
    padded = tf.concat([tf.zeros_like(video[:, :1])] * k + [video], axis=1) if k else video
    return tf.reverse(padded[:, tf.shape(padded)[1] - k :], axis=[1])


def push_frame(recent, frame):
    """`recent` with uint8 `frame` `[B, H, W, C]` as its most recent entry (the oldest dropped)."""
    return tf.concat([frame[:, None], recent[:, :-1]], axis=1)[:, : tf.shape(recent)[1]]


class TemporalState:
    """Runs a model's encoder and ConvLSTM cell one frame at a time (for sampling)."""

    def __init__(self, model):
        self.model = model
        self.config: VPNConfig = model.config

    def zeros(self, batch):
        c = self.config
        z = tf.zeros([batch, c.image_size, c.image_size, c.lstm_channels], self.model.compute_dtype)
        return z, z

    def step(self, state, frame, cond_t):
        """Encodes uint8 `frame` [B, H, W, C] with its condition and advances the ConvLSTM -> new (h, c)."""
        x = scale_pixels(frame, self.model.compute_dtype)
        cond = None if cond_t is None else tf.cast(cond_t, self.model.compute_dtype)
        encoded = self.model.encoder(x, condition=cond)
        return self.model.core.step(encoded, state)

    def run(self, frames, conds):
        """The state after the uint8 frames `[B, T, H, W, C]` (T >= 1) have been read."""
        batch = tf.shape(frames)[0]
        n = tf.shape(frames)[1]

        def body(t, h, c):
            cond_t = None if conds is None else conds[:, t]
            h, c = self.step((h, c), frames[:, t], cond_t)
            return t + 1, h, c

        h0, c0 = self.zeros(batch)
        _, h, c = tf.while_loop(lambda t, h, c: t < n, body, (tf.constant(0), h0, c0))
        return h, c


# ---------------------------------------------------------------------------------------------------------------------
# Spatial part: the decoder, one frame
# ---------------------------------------------------------------------------------------------------------------------


def _masked_kernel(layer):
    """The effective (masked) kernel of a conv layer, in the compute dtype."""
    k = layer.kernel
    if hasattr(layer, "mask"):
        k = k * tf.constant(layer.mask, dtype=k.dtype)
    return tf.cast(k, layer.compute_dtype)


def _bias(layer):
    return tf.cast(layer.bias, layer.compute_dtype)


class _SpatialConv:
    """A k x k masked convolution evaluated one pixel at a time (r = k // 2), for the two pixel loops.

    The mask hides the rows below the centre and the taps right of the centre. Both loops keep each convolution's
    inputs of the frame so far in a cache `[H + r, W + 2r, B, cin]` (r zero rows on top and r zero columns each
    side: the convolution's "same" padding).

    - Pixel loop (`write_cache`, `at`): per pixel, write the input into the cache and contract the r + 1 rows
      up to the centre with the kernel. Under XLA the cache updates happen in place and the ops fuse.
    - Row loop (`above`, `centre`, `next_window`, `store_row`): the taps on the r rows above read inputs that are
      complete when a row starts, so `above` computes them for the whole row at once. Per pixel only the centre
      row's r + 1 taps remain: the inputs of the r pixels to the left (a "window" `[B, r * cin]` the loop carries
      from pixel to pixel: no indexing, no cache written per pixel) and the pixel's own, one matrix product. The
      finished row goes to the cache once (`store_row`). Few, cheap ops per pixel, which is what counts without
      XLA, where each op is dispatched on its own.
    """

    def __init__(self, layer):
        kh, kw = layer.kernel_size
        if tuple(layer.dilation_rate) != (1, 1) or kh != kw:
            raise ValueError(f"cached sampling supports square undilated decoder kernels; {layer.name} is not")
        self.r = kh // 2
        self.k = kh
        kernel = _masked_kernel(layer)
        self.cin, self.cout = int(kernel.shape[2]), int(kernel.shape[3])
        self.kernel = kernel[: self.r + 1]  # [r + 1, k, cin, cout]: the rows up to the centre
        self.above_kernel = kernel[: self.r]  # [r, k, cin, cout]
        # The centre row's taps at and left of the centre (those right of it are masked), one row per (tap, cin),
        # taps left to right: the layout of [window, current input].
        self.centre_kernel = tf.reshape(kernel[self.r, : self.r + 1], [(self.r + 1) * self.cin, self.cout])
        self.left_kernel = self.centre_kernel[: self.r * self.cin]  # the taps left of the centre only
        self.bias = _bias(layer)

    def empty_cache(self, batch, size, channels, dtype):
        return tf.zeros([size + self.r, size + 2 * self.r, batch, channels], dtype)

    # --- pixel loop ---

    def write_cache(self, cache, i, j, value):
        """Stores `value` [B, cin] as the input at pixel (i, j)."""
        return tf.tensor_scatter_nd_update(cache, [[i + self.r, j + self.r]], value[None])

    def at(self, cache, i, j):
        """The convolution's output at pixel (i, j), bias included: `[B, cout]`."""
        window = tf.slice(cache, [i, j, 0, 0], [self.r + 1, self.k, -1, -1])  # [r+1, k, B, cin]
        return tf.einsum("hwbc,hwcd->bd", window, self.kernel) + self.bias

    # --- row loop ---

    @property
    def window_width(self):
        return self.r * self.cin

    def above(self, cache, i):
        """The bias plus the taps on rows i - r .. i - 1 for every pixel of row i: `[W, B, cout]`."""
        size = cache.shape[1] - 2 * self.r
        if self.r == 0:
            return tf.broadcast_to(self.bias, tf.concat([[size], tf.shape(cache)[2:3], tf.shape(self.bias)], 0))
        strip = tf.slice(cache, [i, 0, 0, 0], [self.r, -1, -1, -1])  # [r, W + 2r, B, cin]
        shifted = tf.stack([strip[:, w : w + size] for w in range(self.k)], axis=1)  # [r, k, W, B, cin]
        return tf.einsum("hkwbc,hkcd->wbd", shifted, self.above_kernel) + self.bias

    def centre(self, window, current, weights, n):
        """The centre row's taps at the pixel, `[B, cout]` (add the pixel's `above` term), from the `window` of
        the r inputs to its left and its own input `current` `[B, cin]` (None: zeros), with this convolution's
        (n-th) kernels in `weights` (see `CachedDecoder.pixel_weights`). None if there are no taps."""
        if current is None:
            return tf.matmul(window, weights["left", n]) if self.r else None
        return tf.matmul(tf.concat([window, current], axis=1) if self.r else current, weights["centre", n])

    def next_window(self, window, current):
        """The pieces of the next pixel's window: this one's without its leftmost input, then `current`."""
        if self.r == 0:
            return []
        return [current] if self.r == 1 else [window[:, self.cin :], current]

    def store_row(self, cache, i, row):
        """Writes row i's inputs `[W, B, cin]` into the cache (unread when r = 0: no rows above are used)."""
        if self.r == 0:
            return cache
        row = tf.pad(row, [[self.r, self.r], [0, 0], [0, 0]])
        return tf.tensor_scatter_nd_update(cache, [[i + self.r]], row[None])


def _dense(layer):
    """A 1x1 (masked) conv as a matrix for one pixel: (kernel [cin, cout], bias)."""
    return _masked_kernel(layer)[0, 0], _bias(layer)


def _pack(tensors: dict):
    """Stacks the tensors of equal shape and dtype: (stacks, unpack), `unpack(stacks)` -> the same dict.

    For the row loop's pixel body. Without XLA a `tf.while_loop` passes every tensor its body captures from
    iteration to iteration as a loop variable (Merge, Switch, Identity and NextIteration ops each time); a stack
    of eight kernels is one such variable plus one Unpack per pixel, which shares the stack's buffer (axis 0,
    aligned rows: no copy). Worth ~5% of the row loop's time per frame (`cpu_moving_mnist`, batch 1, one core:
    0.29 vs 0.30-0.31 s, measured once each way twice).
    """
    groups = {}
    for key, t in tensors.items():
        groups.setdefault((tuple(t.shape), t.dtype), []).append(key)
    keys = list(groups.values())
    stacks = [tf.stack([tensors[k] for k in ks]) if len(ks) > 1 else tensors[ks[0]] for ks in keys]

    def unpack(stacks):
        out = {}
        for ks, stack in zip(keys, stacks, strict=True):
            out.update(zip(ks, tf.unstack(stack) if len(ks) > 1 else [stack], strict=True))
        return out

    return stacks, unpack


LOOPS = ("pixel", "row")


class CachedDecoder:
    """Per-pixel evaluation of a built `PixelCNNDecoder` with activation caches.

    The plan mirrors `PixelCNNDecoder.call` layer by layer: type-A input conv on the frame cache (plus the context's
    projection at the pixel, "input" wiring); each block (conditioning bias, the block's context map at the pixel for
    "every_block", reduce, spatial convs on caches, expand, residual); the head. Weights are read (and masked) once
    per call, outside the pixel loop, and everything a frame adds that does not depend on its pixels (context maps,
    conditioning biases) is one map computed before it (`additive_maps`).

    Args:
        model: a built VPN.
        loop: "pixel" (one `tf.while_loop` over the frame's pixels: best under XLA, which fuses its small ops and
            updates the caches in place) or "row" (a loop over rows around a loop over the row's pixels: the
            spatial convolutions' taps on the rows above, the row's noise and its context maps are computed once
            per row, so without XLA, where every op is dispatched separately, a pixel runs fewer ops and copies no
            whole-frame cache; see `_SpatialConv`). Same conditionals
            either way (up to float rounding of the summation order).
    """

    def __init__(self, model, loop: str = "row"):
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}. Received: loop={loop!r}")
        self.model = model
        self.config: VPNConfig = model.config
        self.dtype = model.compute_dtype
        self.hidden = model.decoder.hidden
        self.loop = loop

    def _prepare(self):
        """Reads and masks the weights. Called inside the traced function, so that exports and later calls see
        the variables (not constants frozen at construction)."""
        dec = self.model.decoder
        self.frame_conv = _SpatialConv(dec.frame_input)
        self.wiring = dec.context_wiring
        self.blocks = []
        self.convs = [self.frame_conv]  # every spatial convolution, in the order of `empty_caches`
        for b in dec.blocks:
            entry = {"layer": b, "reduce": _dense(b.reduce), "expand": _dense(b.expand)}
            if isinstance(b, ResidualMultiplicativeBlock):
                entry["kind"] = "rmb"
                entry["mus"] = [_SpatialConv(b.mu1.gates), _SpatialConv(b.mu2.gates)]
                self.convs += entry["mus"]
            elif isinstance(b, ReLUResidualBlock):
                entry["kind"] = "relu"
                entry["spatial"] = _SpatialConv(b.spatial)
                self.convs.append(entry["spatial"])
            else:  # pragma: no cover - only the two block kinds exist
                raise TypeError(f"unsupported block {type(b).__name__}")
            self.blocks.append(entry)
        # Constant biases move out of the per-pixel ops. The residual stream is carried shifted by S_k, the sum of
        # the expand biases of blocks k.. (the frame convolution's bias takes S_0; S_k's share of each block's
        # input is subtracted again in `additive_maps`), so a block's expand adds no bias; a RMB's reduce bias
        # and the topmost layer's bias join the frame's additive map. Same function, fewer ops.
        shift = tf.zeros([2 * self.hidden], self.dtype)
        for b in reversed(self.blocks):
            shift = shift + b["expand"][1]
            b["shift"] = shift  # S_k
        self.frame_conv.bias = self.frame_conv.bias + shift
        self.top = _dense(dec.head.top)
        self.logits = _dense(dec.head.logits)

    def pixel_weights(self, slots):
        """The weights the per-pixel ops read, `{(name, index): tensor}` (the row loop packs them: `_pack`)."""
        w = {}
        for n, conv in enumerate(self.convs):
            w["centre", n] = conv.centre_kernel
            if n == 0 and conv.r:  # the frame's first pass: the pixel's own colours are all still unknown
                w["left", n] = conv.left_kernel
        for k, b in enumerate(self.blocks):
            w["reduce", k] = b["reduce"][0]
            if b["kind"] == "relu":  # a RMB's reduce bias is in its additive map
                w["reduce_bias", k] = b["reduce"][1]
            w["expand", k] = b["expand"][0]
        w["top", 0] = self.top[0]
        if "top" not in slots:
            w["top_bias", 0] = self.top[1]
        w["logits", 0], w["logits_bias", 0] = self.logits
        return w

    def empty_caches(self, batch):
        """Zero caches: the frame (scaled pixels) and one per spatial convolution input."""
        c, s = self.config, self.config.image_size
        return [self.frame_conv.empty_cache(batch, s, c.channels, self.dtype)] + [
            conv.empty_cache(batch, s, self.hidden, self.dtype) for conv in self.convs[1:]
        ]

    def context_map(self, h):
        """The context's projection for the whole frame, `[H, W, B, D]` (pixel-major for cheap indexing): the input
        projection (D = 2c), or every block's and the head's ("every_block": D = (blocks + 1) * 2c; "every_layer"
        adds the topmost layer's top_channels). It depends on past frames only, so it is computed once per frame,
        before the pixel loop."""
        dec = self.model.decoder
        h = tf.cast(h, self.dtype)
        if self.wiring == "input":
            proj = dec.context_input(h)
        else:
            features = dec.context_features(h)
            proj = dec.context_blocks(features)
            if self.wiring == "every_layer":
                proj = tf.concat([proj, dec.context_top(features)], axis=-1)
        return tf.transpose(proj, [1, 2, 0, 3])

    def block_biases(self, cond_t):
        """Per-block conditioning biases `[B, 2c]` for the frame (None entries when unconditioned)."""
        out = []
        for b in self.blocks:
            layer = b["layer"]
            out.append(
                None
                if cond_t is None
                else tf.cast(layer.conditioning(tf.cast(cond_t, self.dtype))[:, 0, 0], self.dtype)
            )
        return out

    def additive_maps(self, h, cond_t):
        """Everything a frame adds to the decoder's layers that does not depend on its pixels, as one map
        `[H, W, B, D]`, the layout `slots` (which of "input", block 0..l-1, "head" and "top" take a piece of D, in
        that order) and each piece's width, for `pixel_logits`.

        Block k's piece is what its branch adds to the residual stream h_k (conditioning bias plus context map),
        less the shift S_k of the carried stream (see `_prepare`); for a RMB, whose branch starts with a linear
        1x1 convolution, that convolution of it plus its bias (width c: the reduce then costs one product and one
        addition per pixel). "input" is the "input" wiring's projection, "head" the head's context map, "top" the
        "every_layer" map of the head's topmost layer plus that layer's bias."""
        size, width = self.config.image_size, 2 * self.hidden
        batch = tf.shape(h)[0]
        ctx = self.context_map(h)  # [H, W, B, D_ctx]
        biases = self.block_biases(cond_t)
        if self.wiring == "input":
            pieces, slots = [ctx], ["input"]
            block_ctx, head, top = [None] * len(self.blocks), None, None
        else:
            n = len(self.blocks)
            sizes = [width] * (n + 1) + ([self.config.top_channels] if self.wiring == "every_layer" else [])
            parts = tf.split(ctx, sizes, axis=-1)
            block_ctx, head = parts[:n], parts[n]
            top = parts[n + 1] if self.wiring == "every_layer" else None
            pieces, slots = [], []
        for k, (b, context, bias) in enumerate(zip(self.blocks, block_ctx, biases, strict=True)):
            added = -b["shift"]
            for extra in (bias, context):  # [B, 2c] and [H, W, B, 2c]; both broadcast
                if extra is not None:
                    added = added + extra
            if b["kind"] == "rmb":
                w, bb = b["reduce"]
                added = tf.tensordot(added, w, axes=1) + bb
            pieces.append(tf.broadcast_to(added, tf.stack([size, size, batch, added.shape[-1]])))
            slots.append(k)
        if head is not None:
            pieces.append(head)
            slots.append("head")
        if top is not None:
            pieces.append(top + self.top[1])
            slots.append("top")
        return tf.concat(pieces, axis=-1), slots, [int(p.shape[-1]) for p in pieces]

    def pixel_logits(self, buffers, conv_out, terms, weights):
        """One pass through every layer at the current pixel: (logits [B, C, K] float32, updated buffers).

        `conv_out(buffers, n, value)` stores `value` `[B, cin]` (unless None) as spatial convolution n's input at
        the pixel and returns (buffers, that convolution's output at the pixel, bias included); the frame's
        buffer (n = 0) must already hold the pixel's known colours. `terms` maps a slot of `additive_maps` to
        its piece at the pixel; `weights` is `pixel_weights`.
        """
        buffers, h = conv_out(buffers, 0, None)  # the residual stream, shifted by S_0 (see `_prepare`)
        if "input" in terms:
            h = h + terms["input"]
        c = self.hidden
        n = 1
        for k, b in enumerate(self.blocks):
            w = weights["reduce", k]
            if b["kind"] == "rmb":
                # reduce(h_k + added), bias included (`additive_maps`). AddN, not `+`: see `_row_loop`.
                r = tf.add_n([tf.matmul(h, w), terms[k]])
                for _ in b["mus"]:
                    buffers, z = conv_out(buffers, n, r)
                    g, u = tf.split(z, [3 * c, c], axis=-1)
                    g1, g2, g3 = tf.split(tf.sigmoid(g), 3, axis=-1)
                    r = g1 * tf.tanh(g2 * r + g3 * tf.tanh(u))
                    n += 1
                out = r
            else:
                r = tf.nn.relu(tf.matmul(tf.nn.relu(h + terms[k]), w) + weights["reduce_bias", k])
                buffers, z = conv_out(buffers, n, r)
                out = tf.nn.relu(z)
                n += 1
            h = h + tf.matmul(out, weights["expand", k])  # the expand bias is in the shift
        if "head" in terms:
            h = h + terms["head"]
        t = tf.matmul(tf.nn.relu(h), weights["top", 0])
        t = tf.add_n([t, terms["top"]]) if "top" in terms else t + weights["top_bias", 0]
        logits = (
            # The logit layer computes in float32 under mixed precision (`OutputHead`).
            tf.matmul(tf.cast(tf.nn.relu(t), weights["logits", 0].dtype), weights["logits", 0])
            + weights["logits_bias", 0]
        )  # [B, K * C], channel j = k * C + colour
        k, ch = self.config.num_classes, self.config.channels
        if ch > 1:
            logits = tf.transpose(tf.reshape(logits, [-1, k, ch]), [0, 2, 1])
        else:
            logits = logits[:, None]
        return tf.cast(logits, tf.float32), buffers

    def _draw_pixel(self, buffers, conv_out, write_pixel, terms, weights, noise, temperature, batch):
        """Draws the pixel's colours in order R -> G -> B, one pass through the layers each (the colour groups
        make pass c exact for colour c). `noise`: the pixel's `draw_noise` `[B, C, K]`. `write_pixel(buffers,
        pixel)` stores scaled colours `[B, C]` (zeros for those not drawn yet) as the frame's value at the pixel.
        Returns (buffers, uint8 `[B, C]`, logits `[B, C, K]` each colour was drawn from)."""
        c, ch = self.config, self.config.channels
        drawn, used, known = [], [], []
        for colour in range(ch):
            if colour:  # before the first colour the frame's buffer holds zeros at the pixel already
                buffers = write_pixel(buffers, tf.concat(known + [tf.zeros([batch, ch - colour], self.dtype)], 1))
            logits, buffers = self.pixel_logits(buffers, conv_out, terms, weights)
            v = draw_from(c, logits[:, colour], noise[:, colour], temperature)
            drawn.append(v)
            used.append(logits[:, colour])
            known.append(scale_pixels(v, self.dtype)[:, None])
        buffers = write_pixel(buffers, known[0] if ch == 1 else tf.concat(known, axis=1))
        return buffers, tf.stack(drawn, axis=-1), tf.stack(used, axis=1)

    def generate_frame(self, h, cond_t, seed_t, temperature, batch_offset=0, return_logits=False):
        """Samples one frame given the ConvLSTM output `h` for it: uint8 `[B, H, W, C]`. `batch_offset`: the index
        of `h`'s first row in the whole batch when sampling a group of rows (see `pixel_noise`).

        With `return_logits`, also returns the float32 logits `[B, H, W, C, K]` each dimension was drawn from (for
        tests and diagnostics: they must equal the teacher-forced conditionals on the sampled video)."""
        self._prepare()
        c = self.config
        size, ch = c.image_size, c.channels
        batch = tf.shape(h)[0]
        extra_map, slots, widths = self.additive_maps(h, cond_t)  # [H, W, B, D]
        caches = self.empty_caches(batch)
        frame = tf.zeros([size, size, batch, ch], tf.uint8)
        drawn_from = tf.TensorArray(tf.float32, size=size * size if return_logits else 0)
        args = (extra_map, slots, widths, seed_t, temperature, batch, batch_offset, return_logits)
        loop = self._pixel_loop if self.loop == "pixel" else self._row_loop
        frame, drawn_from = loop(frame, drawn_from, caches, *args)
        frame = tf.transpose(frame, [2, 0, 1, 3])
        if not return_logits:
            return frame
        logits = tf.reshape(drawn_from.stack(), [size, size, batch, ch, c.num_classes])
        return frame, tf.transpose(logits, [2, 0, 1, 3, 4])

    def _pixel_loop(
        self, frame, drawn_from, caches, extra_map, slots, widths, seed_t, temperature, batch, offset, logits
    ):
        c, size = self.config, self.config.image_size
        weights = self.pixel_weights(slots)  # XLA sees through captures: no packing needed

        def body(index, frame, drawn_from, *caches):
            i, j = index // size, index % size
            terms = dict(zip(slots, tf.split(extra_map[i, j], widths, axis=-1), strict=True))

            def conv_out(caches, n, value):
                conv = self.convs[n]
                if value is not None:
                    caches[n] = conv.write_cache(caches[n], i, j, value)
                return caches, conv.at(caches[n], i, j)

            def write_pixel(caches, pixel):
                caches[0] = self.frame_conv.write_cache(caches[0], i, j, pixel)
                return caches

            noise = draw_noise(c, pixel_noise(c, seed_t, index, batch, offset))
            caches, values, used = self._draw_pixel(
                list(caches), conv_out, write_pixel, terms, weights, noise, temperature, batch
            )
            frame = tf.tensor_scatter_nd_update(frame, [[i, j]], values[None])
            if logits:
                drawn_from = drawn_from.write(index, used)
            return (index + 1, frame, drawn_from, *caches)

        out = tf.while_loop(
            lambda index, *_: index < size * size,
            body,
            (tf.constant(0), frame, drawn_from, *caches),
            parallel_iterations=1,
        )
        return out[1], out[2]

    def _row_loop(
        self, frame, drawn_from, caches, extra_map, slots, widths, seed_t, temperature, batch, offset, logits
    ):
        c, size, ch = self.config, self.config.image_size, self.config.channels
        names = [("above", n) for n in range(len(self.convs))] + slots
        widths = [conv.cout for conv in self.convs] + widths
        window_widths = [conv.window_width for conv in self.convs]
        packed, unpack = _pack(self.pixel_weights(slots))

        def row_body(i, frame, drawn_from, *caches):
            # Everything of row i that does not depend on its own pixels, as one [W, B, D] tensor: the spatial
            # convolutions' taps on the rows above (biases included) and the additive maps; per pixel, one gather
            # and one split hand every layer its piece.
            aboves = [conv.above(cache, i) for conv, cache in zip(self.convs, caches, strict=True)]
            row_terms = tf.concat([*aboves, extra_map[i]], axis=-1)
            noise_row = draw_noise(c, pixel_noise(c, seed_t, i * size + tf.range(size), batch, offset))
            values = tf.TensorArray(tf.uint8, size=size, element_shape=[None, ch])
            # Per pixel, every convolution's window for the next pixel, in one tensor [B, sum of r * cin] (the
            # last cin columns of each convolution's piece are its input at the pixel: `store_row` reads them).
            inputs = tf.TensorArray(self.dtype, size=size, element_shape=[None, sum(window_widths)])
            window = tf.zeros([batch, sum(window_widths)], self.dtype)  # the left "same" padding

            def pixel_body(j, values, drawn_from, inputs, window):
                terms = dict(zip(names, tf.split(tf.gather(row_terms, j), widths, axis=-1), strict=True))
                windows = tf.split(window, window_widths, axis=1)
                weights = unpack(packed)

                def conv_out(current, n, value):
                    if value is not None:
                        current[n] = value
                    centre = self.convs[n].centre(windows[n], current[n], weights, n)
                    if centre is None:
                        return current, terms["above", n]
                    # AddN, not AddV2: oneDNN's graph rewrite fuses MatMul + AddV2 into a MatMul with a bias and
                    # then rejects the 2-D addend at run time when a batch group has one row ("bias must be
                    # 1-dimensional [1,8]"; seen with TF 2.21, oneDNN on).
                    return current, tf.add_n([centre, terms["above", n]])

                def write_pixel(current, pixel):
                    current[0] = pixel
                    return current

                noise = tf.gather(noise_row, j)
                current, pixel_values, used = self._draw_pixel(
                    [None] * len(self.convs), conv_out, write_pixel, terms, weights, noise, temperature, batch
                )
                values = values.write(j, pixel_values)
                if logits:
                    drawn_from = drawn_from.write(i * size + j, used)
                pieces = [
                    p for conv, w, x in zip(self.convs, windows, current, strict=True) for p in conv.next_window(w, x)
                ]
                window = tf.concat(pieces, axis=1) if pieces else window  # no convolution has taps left
                return j + 1, values, drawn_from, inputs.write(j, window), window

            _, values, drawn_from, inputs, _ = tf.while_loop(
                lambda j, *_: j < size,
                pixel_body,
                (tf.constant(0), values, drawn_from, inputs, window),
                parallel_iterations=1,
            )
            rows = tf.split(inputs.stack(), window_widths, axis=-1)  # [W, B, r * cin] each
            caches = [
                conv.store_row(cache, i, row[..., row.shape[-1] - conv.cin :])
                for conv, cache, row in zip(self.convs, caches, rows, strict=True)
            ]
            frame = tf.tensor_scatter_nd_update(frame, [[i]], values.stack()[None])
            return (i + 1, frame, drawn_from, *caches)

        out = tf.while_loop(
            lambda i, *_: i < size,
            row_body,
            (tf.constant(0), frame, drawn_from, *caches),
            parallel_iterations=1,
        )
        return out[1], out[2]


def naive_frame(model, h, cond_t, seed_t, temperature, rows=None):
    """The reference: sample one frame by rerunning the whole decoder for every dimension (eager loop).

    `rows` limits generation to the first rows (benchmarks time a few rows and scale); the rest stay 0.
    """
    c = model.config
    size, ch = c.image_size, c.channels
    batch = int(h.shape[0])
    frame = np.zeros([batch, size, size, ch], np.uint8)
    decoder = _compiled_decoder(model)
    dec_cond = None if cond_t is None else tf.cast(cond_t, model.compute_dtype)
    context = tf.cast(h, model.compute_dtype)
    for index in range((rows or size) * size):
        i, j = index // size, index % size
        noise = pixel_noise(c, seed_t, index, batch)
        for colour in range(ch):
            logits = decoder(tf.constant(frame), context, dec_cond)
            frame[:, i, j, colour] = draw(c, logits[:, i, j, colour], noise[:, colour], temperature).numpy()
    return tf.constant(frame)


def _compiled_decoder(model):
    if getattr(model, "_vpn_naive_decoder", None) is None:

        @tf.function(reduce_retracing=True)
        def run(frame, context, cond):
            return model.decoder(scale_pixels(frame, model.compute_dtype), context, condition=cond)

        model._vpn_naive_decoder = run
    return model._vpn_naive_decoder


def baseline_frame(model, h, cond_t, seed_t, temperature):
    """The baseline's frame: every pixel drawn at once from its conditional given the past frames only."""
    c = model.config
    dec_cond = None if cond_t is None else tf.cast(cond_t, model.compute_dtype)
    logits = model.decoder(tf.cast(h, model.compute_dtype), condition=dec_cond)  # [B, H, W, C, K]
    batch = tf.shape(h)[0]
    size = c.image_size
    noise = pixel_noise(c, seed_t, tf.range(size * size), batch)  # [H*W, B, C, K]
    noise = tf.transpose(tf.reshape(noise, [size, size, batch, c.channels, c.num_classes]), [2, 0, 1, 3, 4])
    return draw(c, logits, noise, temperature)


# ---------------------------------------------------------------------------------------------------------------------
# The public API
# ---------------------------------------------------------------------------------------------------------------------


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers' cpusets restrict; `os.cpu_count()` counts
    the host's), at most 8: past that, groups of one or two rows would each pay the whole per-pixel dispatch cost."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


class Sampler:
    """Samples continuations from a built `VideoPixelNetwork`.

    Args:
        model: the model (VPN or baseline).
        method: "cached" (fast, default) or "naive" (reference; VPN only).
        jit: compile the per-frame pixel loop with XLA (default; the loop's many small ops fuse). Without it the
            cached decoder runs its row loop (`CachedDecoder(loop="row")`), which dispatches far fewer ops.
        groups: the cached VPN sampler splits the batch into this many groups whose pixel loops run concurrently
            (`Sampler.sample`, `generate_frame` and `sample_graph`, hence exports). On CPUs the loop is bound by
            per-op dispatch (dozens of small ops per pixel), not arithmetic, so one loop per core is faster (~1.4x
            on our 2 cores: `python -m bench.sampling --groups 1` vs `--groups 2`). Every row gets the noise it gets
            in the whole batch, so the samples are the same up to float rounding of the per-group matrix products.
            Default: the usable CPU cores (at most 8) without a GPU, else 1.
        tf32: leave TensorFloat-32 as it is. By default the sampler turns it off for the process
            (`vpn_tf.devices.set_tf32(False)`): on Ampere and newer GPUs TensorFlow runs float32 convolutions and
            matmuls in TF32 unless told otherwise, and then the cached sampler would neither reproduce the naive
            one's bytes nor give the same video for the same seed on every device. No effect on CPUs.
    """

    def __init__(self, model, method: str = "cached", jit: bool = True, groups: int | None = None, tf32: bool = False):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
        if not tf32:
            set_tf32(False)
        self.model = model
        self.config: VPNConfig = model.config
        self.method = method
        self.temporal = TemporalState(model)
        if self.config.model == "baseline":
            frame_fn = lambda h, cond, seed_t, temp: baseline_frame(model, h, cond, seed_t, temp)  # noqa: E731
        elif method == "cached":
            # XLA runs the single pixel loop fastest; without XLA the row loop dispatches far fewer ops per pixel.
            decoder = CachedDecoder(model, loop="pixel" if jit else "row")
            frame_fn = decoder.generate_frame
        else:
            frame_fn = lambda h, cond, seed_t, temp: naive_frame(model, h, cond, seed_t, temp)  # noqa: E731
        self._frame_fn = frame_fn
        if groups is None:
            groups = 1 if tf.config.list_physical_devices("GPU") else _usable_cores()
        if groups < 1:
            raise ValueError(f"groups must be >= 1. Received: groups={groups}")
        self.groups = groups if (method == "cached" and self.config.model == "vpn") else 1
        if method == "naive" and self.config.model == "vpn":
            self.generate_frame = frame_fn  # an eager loop over dimensions around a compiled decoder
        else:
            self._compiled_frame = tf.function(frame_fn, jit_compile=jit, reduce_retracing=True)
            self._grouped = {}
            self.generate_frame = self._compiled_frame if self.groups == 1 else self._generate_frame_in_groups

    def _generate_frame_in_groups(self, h, cond_t, seed_t, temperature):
        """`generate_frame` with the batch split into groups whose (compiled) pixel loops run concurrently."""
        batch = h.shape[0]
        groups = self.groups if batch is None else max(1, min(self.groups, batch))
        if groups == 1:
            return self._compiled_frame(h, cond_t, seed_t, temperature)
        if groups not in self._grouped:
            # A graph (not eager) so TF's executor launches the independent group loops in parallel.
            self._grouped[groups] = tf.function(
                lambda h, cond_t, seed_t, temperature: self._frame_in_groups(h, cond_t, seed_t, temperature, groups),
                reduce_retracing=True,
            )
        return self._grouped[groups](h, cond_t, seed_t, temperature)

    def _frame_in_groups(self, h, cond_t, seed_t, temperature, groups: int):
        """Graph code: one frame with the batch split into `groups` row groups, each its own (compiled) pixel loop.

        The loops are independent ops, so TF's executor runs them concurrently. Every row keeps the noise it gets in
        the whole batch (`batch_offset`), so the video is the one the whole batch would draw. Batch sizes may be
        unknown until run time: a group that a small batch leaves empty is skipped.
        """
        c = self.config
        b = tf.shape(h)[0]
        sizes = [(b + groups - 1 - g) // groups for g in range(groups)]
        offsets = [tf.add_n(sizes[:g]) if g else tf.constant(0) for g in range(groups)]
        hs = tf.split(h, tf.stack(sizes))
        cs = [None] * groups if cond_t is None else tf.split(cond_t, tf.stack(sizes))
        empty = tf.zeros([0, c.image_size, c.image_size, c.channels], tf.uint8)
        parts = []
        for g in range(groups):

            def run(g=g):
                return self._compiled_frame(hs[g], cs[g], seed_t, temperature, offsets[g])

            parts.append(tf.cond(sizes[g] > 0, run, lambda: empty))
        return tf.concat(parts, axis=0)

    def sample_graph(self, context, num_frames, seed, actions=None, states=None, temperature=1.0):
        """The whole continuation as one graph (a `tf.while_loop` over frames): uint8 `[B, num_frames, H, W, C]`.

        Used by the exported `sample` signature; inputs must already be validated.
        """
        if self.method == "naive" and self.config.model == "vpn":
            raise ValueError("sample_graph needs method='cached' (the naive reference runs eagerly)")
        batch = tf.shape(context)[0]
        n_ctx = tf.shape(context)[1]
        total = n_ctx + num_frames
        conds = frame_conditions(self.config, actions, states, total, batch)
        state = self.temporal.run(context, None if conds is None else conds[:, :n_ctx])
        recent = recent_frames(self.config, context)
        c = self.config
        frames = tf.TensorArray(tf.uint8, size=num_frames, element_shape=[None, c.image_size, c.image_size, c.channels])

        def body(k, h, cc, recent, frames):
            t = n_ctx + k
            cond_t = None if conds is None else conds[:, t]
            decoder_context = self.model.decoder_context(h, recent)
            if self.groups > 1:
                frame = self._frame_in_groups(decoder_context, cond_t, frame_seed(seed, t), temperature, self.groups)
            else:
                # The frame's own function, XLA-compiled when `jit`: inside an export it keeps that mark, so a
                # loaded SavedModel (and TF Serving with --xla_cpu_compilation_enabled=true) runs it compiled.
                frame = self._compiled_frame(decoder_context, cond_t, frame_seed(seed, t), temperature)
            frames = frames.write(k, frame)
            h, cc = self.temporal.step((h, cc), frame, cond_t)
            return k + 1, h, cc, push_frame(recent, frame), frames

        _, _, _, _, frames = tf.while_loop(lambda k, *_: k < num_frames, body, (tf.constant(0), *state, recent, frames))
        return tf.transpose(frames.stack(), [1, 0, 2, 3, 4])

    def sample(self, context, num_frames: int, seed=(0, 0), actions=None, states=None, temperature=1.0, progress=False):
        """Samples `num_frames` frames after uint8 `context` `[B, T_ctx, H, W, C]`; returns uint8 numpy.

        Args:
            context: the given frames.
            num_frames: frames to generate.
            seed: two ints; the same seed gives the same video.
            actions: `[B, T_ctx + num_frames, action_dim]` for action-conditional configs (future actions included).
            states: `[B, >= context_frames, state_dim]` for state-conditional configs.
            temperature: divides the logits (1.0: the model's distribution).
            progress: show a progress bar over frames.
        """
        from vpn_tf.inputs import validate_vector, validate_video

        c = self.config
        context = validate_video(context, c, min_frames=1)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1. Received: {num_frames}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0. Received: {temperature}")
        batch, n_ctx = int(context.shape[0]), int(context.shape[1])
        total = n_ctx + num_frames
        if c.action_dim:
            actions = validate_vector(actions, "actions", c.action_dim, batch, total)
        if c.state_dim:
            states = validate_vector(
                states, "states", c.state_dim, batch, None, min_frames=min(n_ctx, c.context_frames)
            )
        seed = tf.constant(np.asarray(seed, np.int64).reshape(2))
        temperature = tf.constant(temperature, tf.float32)
        conds = frame_conditions(c, actions, states, total, batch)
        state = self.temporal.run(context, None if conds is None else conds[:, :n_ctx])
        recent = recent_frames(c, tf.constant(context))
        out = []
        from tqdm import tqdm

        for k in tqdm(range(num_frames), desc="sampling", unit="frame", disable=not progress):
            t = n_ctx + k
            cond_t = None if conds is None else conds[:, t]
            frame = self.generate_frame(
                self.model.decoder_context(state[0], recent), cond_t, frame_seed(seed, t), temperature
            )
            out.append(frame)
            state = self.temporal.step(state, frame, cond_t)
            recent = push_frame(recent, frame)
        return np.stack([f.numpy() for f in out], axis=1)


def sample(model, context, num_frames, seed=(0, 0), actions=None, states=None, temperature=1.0, method="cached"):
    """One-call sampling; see `Sampler.sample`."""
    return Sampler(model, method).sample(context, num_frames, seed, actions, states, temperature)
