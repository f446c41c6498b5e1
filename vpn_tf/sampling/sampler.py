"""`Sampler`: continuations of a VPN (or its baseline), frame by frame, with the cached or the naive decoder."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import tensorflow as tf

from vpn_tf.config import VPNConfig
from vpn_tf.devices import exact_float32
from vpn_tf.sampling.cached import CachedDecoder
from vpn_tf.sampling.noise import frame_seed
from vpn_tf.sampling.reference import baseline_frame, naive_frame
from vpn_tf.sampling.temporal import TemporalState, frame_conditions, push_frame, recent_frames

METHODS = ("cached", "naive")


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
        tf32: leave TensorFloat-32 as it is. By default `sample` and `sample_graph` run with it off
            (`vpn_tf.devices.exact_float32`, restored afterwards): on Ampere and newer GPUs TensorFlow runs float32
            convolutions and matmuls in TF32 unless told otherwise, and then the cached sampler would neither
            reproduce the naive one's bytes nor give the same video for the same seed on every device. No effect on
            CPUs. A SavedModel cannot carry the setting (docs/gpus.md).
    """

    def __init__(self, model, method: str = "cached", jit: bool = True, groups: int | None = None, tf32: bool = False):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
        self.tf32 = tf32
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
            # autograph=False here and in the training and evaluation steps: their loops are tf.while_loop and their
            # Python branches test Python values, so converting the called methods' source only costs start-up time.
            self._compiled_frame = tf.function(frame_fn, jit_compile=jit, reduce_retracing=True, autograph=False)
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
                autograph=False,
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
        empty = tf.zeros([0, *c.frame_shape], tf.uint8)
        parts = []
        for g in range(groups):

            def run(g=g):
                return self._compiled_frame(hs[g], cs[g], seed_t, temperature, offsets[g])

            parts.append(tf.cond(sizes[g] > 0, run, lambda: empty))
        return tf.concat(parts, axis=0)

    def next_frame(self, h, cc, recent, cond_t, seed_t, temperature):
        """One step of every continuation: the next frame from the ConvLSTM state (h, cc) and the `recent` frames,
        then the state and recent frames after it. The one frame loop body of `sample` (eager, one call per
        frame) and `sample_graph` (a `tf.while_loop`, hence exports)."""
        frame = self.generate_frame(self.model.decoder_context(h, recent), cond_t, seed_t, temperature)
        h, cc = self.temporal.step((h, cc), frame, cond_t)
        return frame, h, cc, push_frame(recent, frame)

    def sample_graph(self, context, num_frames, seed, actions=None, states=None, temperature=1.0):
        """The whole continuation as one graph (a `tf.while_loop` over frames): uint8 `[B, num_frames, H, W, C]`.

        Used by the exported `sample` signature; inputs must already be validated.
        """
        with contextlib.nullcontext() if self.tf32 else exact_float32():
            return self._sample_graph(context, num_frames, seed, actions, states, temperature)

    def _sample_graph(self, context, num_frames, seed, actions=None, states=None, temperature=1.0):
        if self.method == "naive" and self.config.model == "vpn":
            raise ValueError("sample_graph needs method='cached' (the naive reference runs eagerly)")
        c = self.config
        batch, n_ctx = tf.shape(context)[0], tf.shape(context)[1]
        conds = frame_conditions(c, actions, states, n_ctx + num_frames, batch)
        h, cc = self.temporal.run(context, None if conds is None else conds[:, :n_ctx])
        frames = tf.TensorArray(tf.uint8, size=num_frames, element_shape=[None, *c.frame_shape])

        def body(k, h, cc, recent, frames):
            t = n_ctx + k
            cond_t = None if conds is None else conds[:, t]
            # Inside an export the frame's own function keeps its XLA mark (`jit`), so a loaded SavedModel (and TF
            # Serving with --xla_cpu_compilation_enabled=true) runs it compiled.
            frame, h, cc, recent = self.next_frame(h, cc, recent, cond_t, frame_seed(seed, t), temperature)
            return k + 1, h, cc, recent, frames.write(k, frame)

        loop_vars = (tf.constant(0), h, cc, recent_frames(c, context), frames)
        frames = tf.while_loop(lambda k, *_: k < num_frames, body, loop_vars)[-1]
        return tf.transpose(frames.stack(), [1, 0, 2, 3, 4])

    def sample(self, context, num_frames: int, seed=(0, 0), actions=None, states=None, temperature=1.0, progress=False):
        """Samples `num_frames` frames after uint8 `context` `[B, T_ctx, H, W, C]`; returns uint8 numpy (see
        `_sample` for the arguments). TensorFloat-32 is off meanwhile unless the sampler was made with `tf32=True`."""
        with contextlib.nullcontext() if self.tf32 else exact_float32():
            return self._sample(context, num_frames, seed, actions, states, temperature, progress)

    def _sample(
        self, context, num_frames: int, seed=(0, 0), actions=None, states=None, temperature=1.0, progress=False
    ):
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
        from tqdm import tqdm

        from vpn_tf.inputs import validate_vector, validate_video

        c = self.config
        context = validate_video(context, c, min_frames=1)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1. Received: {num_frames}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0. Received: {temperature}")
        batch, n_ctx = int(context.shape[0]), int(context.shape[1])
        total = n_ctx + num_frames
        for name, dim, given in (("actions", c.action_dim, actions), ("states", c.state_dim, states)):
            if given is not None and not dim:
                raise ValueError(
                    f"{name} were given, but {c.name} is not conditioned on {name} ({name[:-1]}_dim=0); pass none"
                )
        if c.action_dim:
            actions = validate_vector(actions, "actions", c.action_dim, batch, total)
        if c.state_dim:
            states = validate_vector(
                states, "states", c.state_dim, batch, None, min_frames=min(n_ctx, c.context_frames)
            )
        seed = tf.constant(np.asarray(seed, np.int64).reshape(2))
        temperature = tf.constant(temperature, tf.float32)
        conds = frame_conditions(c, actions, states, total, batch)
        h, cc = self.temporal.run(context, None if conds is None else conds[:, :n_ctx])
        recent = recent_frames(c, tf.constant(context))
        out = []
        for k in tqdm(range(num_frames), desc="sampling", unit="frame", disable=not progress):
            t = n_ctx + k
            cond_t = None if conds is None else conds[:, t]
            frame, h, cc, recent = self.next_frame(h, cc, recent, cond_t, frame_seed(seed, t), temperature)
            out.append(frame)
        return np.stack([f.numpy() for f in out], axis=1)


def sample(model, context, num_frames, seed=(0, 0), actions=None, states=None, temperature=1.0, method="cached"):
    """One-call sampling; see `Sampler.sample`."""
    return Sampler(model, method).sample(context, num_frames, seed, actions, states, temperature)
