"""Export a VPN as a SavedModel that TF Serving can serve: `sample` and `log_prob` signatures.

Signatures (batch size free; H, W, C fixed by the config):
    sample(context uint8 [B, T_ctx, H, W, C], seed int32 [2], num_frames int32 [],
           actions float32 [B, T_ctx + num_frames, A]  (action-conditional configs),
           states float32 [B, >= min(T_ctx, context_frames), S]  (state-conditional configs))
        -> {"frames": uint8 [B, num_frames, H, W, C]}
    log_prob(video uint8 [B, T, H, W, C], actions [B, T, A], states [B, >= context_frames, S])
        -> {"nats_per_frame": float32 [B, T - context_frames], "total_nats": float32 [B],
            "nats_per_dim": float32 [B]}
    serving_default = sample.
Inputs are validated inside the graph (frame height, width and channels included: a loaded signature does not
enforce its static shape); a violation fails the request with a message naming the expected shape or range. The
sampler is the cached one (see vpn_tf/sampling.py), its batch split into concurrent row groups; with `xla=True` each
frame's pixel loop is a function marked for XLA compilation (`_XlaMustCompile`), which a loaded SavedModel honours
(TF Serving on CPU needs `--xla_cpu_compilation_enabled=true`). Default exports hold no XLA mark.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from vpn_tf import distributions
from vpn_tf.config import VPNConfig
from vpn_tf.layers.multiplicative_unit import xla_gate_fusion
from vpn_tf.sampling import Sampler


def _assert(condition, message):
    return tf.debugging.Assert(condition, [message])


class ExportModule(tf.Module):
    """Holds the model and the serving functions (the model's variables are saved once, shared by both)."""

    def __init__(self, model, xla: bool = False, temperature: float = 1.0, groups: int | None = None):
        super().__init__(name="vpn_export")
        self.model = model
        # Track the backing tf.Variables themselves (Keras 3 variables wrap them): the serving functions capture
        # these handles, and TF1-style loaders (TF Serving, saved_model_cli run) only restore variables that the
        # SavedModel's saver knows as such. Without this, `saved_model_cli run` fails with "Could not find variable".
        self.model_variables = [v.value for v in model.variables]
        self.config: VPNConfig = model.config
        self.temperature = float(temperature)
        self._sampler = Sampler(model, "cached", jit=xla, groups=groups)
        c = self.config
        frames = tf.TensorSpec([None, None, *c.frame_shape], tf.uint8)
        vectors = [tf.TensorSpec([None, None, d], tf.float32) for d in (c.action_dim, c.state_dim) if d]
        names = [n for n, d in (("actions", c.action_dim), ("states", c.state_dim)) if d]
        sample_spec = [frames, tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32), *vectors]
        log_prob_spec = [frames, *vectors]
        # Serving signatures take their input names from the Python parameters, so each combination of vectors
        # gets functions with exactly those parameters.
        sample_fn, log_prob_fn = _SIGNATURE_FUNCTIONS[tuple(names)]
        self.sample = tf.function(sample_fn(self), input_signature=sample_spec)
        self.log_prob = tf.function(log_prob_fn(self), input_signature=log_prob_spec)

    def _check_frames(self, name, shape):
        """The check that `name`'s frames (`shape`: its dynamic shape) are the config's: a loaded signature does not
        hold callers to its static [None, None, H, W, C] spec, and a frame of another shape (a transposed one
        included, which has as many pixels) would fail deep inside the graph, if at all."""
        h, w, ch = self.config.frame_shape
        return _assert(
            tf.reduce_all(tf.equal(shape[-3:], [h, w, ch])),
            f"{name} must be uint8 [batch, time, {h}, {w}, {ch}]: frames {h} high and {w} wide with {ch} channel(s)",
        )

    def _check_vectors(self, inputs, batch, frames, checks):
        c = self.config
        for name, dim in (("actions", c.action_dim), ("states", c.state_dim)):
            if not dim:
                continue
            v = inputs[name]
            shape = tf.shape(v)
            checks.append(_assert(tf.equal(shape[0], batch), f"{name} must have the batch size of the video"))
            need = frames if name == "actions" else tf.minimum(frames, c.context_frames)
            text = "every frame (context + generated)" if name == "actions" else "the context frames"
            checks.append(
                _assert(tf.greater_equal(shape[1], need), f"{name} must be [batch, frames, {dim}] covering {text}")
            )
            checks.append(_assert(tf.reduce_all(tf.math.is_finite(v)), f"{name} must be finite (no NaN or Inf)"))

    def _sample(self, inputs):
        c = self.config
        context, seed, num_frames = inputs["context"], inputs["seed"], inputs["num_frames"]
        shape = tf.shape(context)
        checks = [
            self._check_frames("context", shape),
            _assert(tf.greater_equal(shape[1], 1), "context must be uint8 [batch, time >= 1, H, W, C]"),
            _assert(tf.greater_equal(num_frames, 1), "num_frames must be >= 1"),
            _assert(tf.less_equal(num_frames, 1000), "num_frames must be <= 1000"),
        ]
        self._check_vectors(inputs, shape[0], shape[1] + num_frames if c.action_dim else shape[1], checks)
        with tf.control_dependencies(checks):
            frames = self._sampler.sample_graph(
                tf.identity(context),
                num_frames,
                tf.cast(seed, tf.int64),
                inputs.get("actions"),
                inputs.get("states"),
                tf.constant(self.temperature),
            )
        return {"frames": frames}

    def _log_prob(self, inputs):
        c = self.config
        video = inputs["video"]
        shape = tf.shape(video)
        checks = [
            self._check_frames("video", shape),
            _assert(
                tf.greater(shape[1], c.context_frames),
                f"video must be uint8 [batch, time > {c.context_frames}, H, W, C]: context_frames={c.context_frames} "
                "frames are given and at least one is predicted",
            ),
        ]
        self._check_vectors(inputs, shape[0], shape[1], checks)
        with tf.control_dependencies(checks):
            model_inputs = {"video": tf.identity(video)}
            for name in ("actions", "states"):
                if name in inputs:
                    model_inputs[name] = inputs[name]
            logits = self.model(model_inputs)
            lp = distributions.log_prob(logits, video[:, c.context_frames :], c.output)
        per_frame = -distributions.per_frame(lp)
        return {
            "nats_per_frame": per_frame,
            "total_nats": tf.reduce_sum(per_frame, axis=1),
            "nats_per_dim": -distributions.per_dimension(lp),
        }


def _plain(m):
    def sample(context, seed, num_frames):
        return m._sample({"context": context, "seed": seed, "num_frames": num_frames})

    def log_prob(video):
        return m._log_prob({"video": video})

    return sample, log_prob


def _actions(m):
    def sample(context, seed, num_frames, actions):
        return m._sample({"context": context, "seed": seed, "num_frames": num_frames, "actions": actions})

    def log_prob(video, actions):
        return m._log_prob({"video": video, "actions": actions})

    return sample, log_prob


def _states(m):
    def sample(context, seed, num_frames, states):
        return m._sample({"context": context, "seed": seed, "num_frames": num_frames, "states": states})

    def log_prob(video, states):
        return m._log_prob({"video": video, "states": states})

    return sample, log_prob


def _both(m):
    def sample(context, seed, num_frames, actions, states):
        inputs = {"context": context, "seed": seed, "num_frames": num_frames, "actions": actions, "states": states}
        return m._sample(inputs)

    def log_prob(video, actions, states):
        return m._log_prob({"video": video, "actions": actions, "states": states})

    return sample, log_prob


def _pair(factory):
    return lambda m: factory(m)[0], lambda m: factory(m)[1]


_SIGNATURE_FUNCTIONS = {
    (): _pair(_plain),
    ("actions",): _pair(_actions),
    ("states",): _pair(_states),
    ("actions", "states"): _pair(_both),
}


def export(model, export_dir: str, xla: bool = False, temperature: float = 1.0, groups: int | None = None) -> str:
    """Writes the SavedModel to `export_dir` (TF Serving layout: BASE/NAME/VERSION); returns the path.

    `groups`: the `sample` signature splits the batch into this many row groups whose pixel loops run concurrently
    (`Sampler`; default: the exporting machine's usable cores, at most 8). Any batch size works, smaller ones leave
    groups empty; the videos do not depend on it.
    """
    if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        raise FileExistsError(f"{export_dir} already holds a SavedModel; choose a new version directory")
    module = ExportModule(model, xla=xla, temperature=temperature, groups=groups)
    signatures = {"serving_default": module.sample, "sample": module.sample, "log_prob": module.log_prob}
    # Without --xla the graphs must hold no XLA cluster at all (TF Serving's CPU default cannot run them), so the
    # multiplicative units' fused gating is traced unfused too.
    with xla_gate_fusion(xla):
        tf.saved_model.save(module, export_dir, signatures=signatures)
    # Written beside the graph: what the export baked in, for whoever deploys it.
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)  # TF Serving ignores what it does not know
    with open(os.path.join(export_dir, "assets.extra", "vpn_tf_export.json"), "w") as f:
        json.dump({"groups": module._sampler.groups, "xla": xla, "temperature": temperature}, f)
    return export_dir


def signature_sampler(signature):
    """A loaded SavedModel's `sample` signature as a function (context, num_frames, seed, actions, states) -> uint8
    frames of numpy inputs, like `Sampler.sample` (actions cut to the frames sampled)."""

    def fn(context, num_frames, seed, actions=None, states=None):
        kw = {
            "context": tf.constant(context),
            "seed": tf.constant(seed, tf.int32),
            "num_frames": tf.constant(num_frames, tf.int32),
        }
        if actions is not None:
            kw["actions"] = tf.constant(actions[:, : context.shape[1] + num_frames])
        if states is not None:
            kw["states"] = tf.constant(states)
        return signature(**kw)["frames"].numpy()

    return fn
