"""The Video Pixel Network and its baseline as one Keras model (§2, §3 of the VPN paper)."""

from __future__ import annotations

import keras
from keras import ops

from vpn_tf import distributions
from vpn_tf.config import VPNConfig
from vpn_tf.inputs import validate_inputs
from vpn_tf.layers.conv_lstm import ConvLSTM
from vpn_tf.models.baseline_decoder import BaselineDecoder
from vpn_tf.models.encoder import ResolutionPreservingEncoder
from vpn_tf.models.pixelcnn_decoder import PixelCNNDecoder


def scale_pixels(video, dtype):
    """uint8 0..255 -> [-1, 1] in `dtype`; the network never sees raw 0..255 floats."""
    return ops.cast(video, dtype) / 127.5 - 1.0


def condition_vectors(config: VPNConfig, actions, states, num_frames):
    """Per-frame conditioning `[batch, T, action_dim + state_dim]`, or None for unconditional configs.

    §6.1: context frames are conditioned on their action and state; the predicted frames on their action only (their
    states are zeroed: the measured pose of frame t would reveal the arm's position in frame t). States beyond the
    context are therefore never read, and need not be passed.
    """
    if not config.conditional:
        return None
    parts = []
    if config.action_dim:
        parts.append(actions[:, :num_frames])
    if config.state_dim:
        ctx = states[:, : config.context_frames]  # a sampler's shorter context may give fewer
        zeros = ops.zeros((ops.shape(ctx)[0], num_frames - ops.shape(ctx)[1], config.state_dim), ctx.dtype)
        parts.append(ops.concatenate([ctx, zeros], axis=1))
    return ops.concatenate(parts, axis=-1)


@keras.saving.register_keras_serializable(package="vpn_tf")
class VideoPixelNetwork(keras.Model):
    """p(x) = prod_t p(F_t | F_<t) with PixelCNN decoders (config.model == "vpn") or the baseline's factorised
    decoders (config.model == "baseline").

    Encoders read frames F_0..F_{T-2} (all at once, time folded into the batch), a ConvLSTM carries time, and for
    every predicted frame t >= context_frames the decoder reads the ConvLSTM output after F_{t-1} together with
    F_t itself through masked convolutions (VPN only). The whole teacher-forced forward pass is one graph: no Python
    loop over frames or pixels.

    Call arguments:
        inputs: a dict with "video" (uint8 `[batch, T, H, W, C]`) and, for conditional configs, "actions"
            (`[batch, T, action_dim]`) and "states" (`[batch, >= context_frames, state_dim]`); or the video alone.

    Returns:
        float32 logits `[batch, T - context_frames, H, W, C, K]`.
    """

    def __init__(self, config: VPNConfig, **kwargs):
        if isinstance(config, dict):
            config = VPNConfig.from_dict(config)
        kwargs.setdefault("name", "vpn" if config.model == "vpn" else "baseline")
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.encoder = ResolutionPreservingEncoder(
            c.hidden,
            c.dilations,
            c.block,
            condition_dim=c.condition_dim,
            remat=c.remat,
            dtype=self.dtype_policy,
            name="encoder",
        )
        self.core = ConvLSTM(c.lstm_channels, c.lstm_kernel_size, dtype=self.dtype_policy, name="conv_lstm")
        decoder_args = dict(
            hidden=c.hidden,
            num_blocks=c.decoder_blocks,
            block=c.block,
            channels=c.channels,
            num_classes=c.num_classes,
            top_channels=c.top_channels,
            condition_dim=c.condition_dim,
            remat=c.remat,
            dtype=self.dtype_policy,
            name="decoder",
        )
        if c.model == "vpn":
            self.decoder = PixelCNNDecoder(
                first_kernel_size=c.first_kernel_size,
                context_wiring=c.context_wiring,
                context_kernel_size=c.context_kernel_size,
                **decoder_args,
            )
        else:
            self.decoder = BaselineDecoder(**decoder_args)

    # -- Keras plumbing ------------------------------------------------------------------------------------------

    def build(self, input_shape=None):
        """Builds every weight from the config alone (height, width and channels are fixed by it)."""
        c = self.config
        hh, ww = c.height, c.width
        frame = (None, hh, ww, c.channels)
        self.encoder.build(frame)
        self.core.build((None, None, hh, ww, 2 * c.hidden))
        context = (None, hh, ww, c.context_channels)
        if c.model == "vpn":
            self.decoder.build(frame, context)
        else:
            self.decoder.build(context)
        self.built = True

    def get_build_config(self):
        # Non-empty so that loading calls `build_from_config`; the shapes all follow from the config.
        return {"from_model_config": True}

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(VPNConfig.from_dict(config["config"]), name=config.get("name"))

    # -- Forward pass --------------------------------------------------------------------------------------------

    def call(self, inputs):
        if isinstance(inputs, dict):
            video, actions, states = inputs["video"], inputs.get("actions"), inputs.get("states")
        else:
            video, actions, states = inputs, None, None
        c = self.config
        hh, ww, ch = c.frame_shape
        static = tuple(video.shape)
        if len(static) != 5 or any(s is not None and s != e for s, e in zip(static[2:], c.frame_shape, strict=True)):
            # The reshapes below would read a transposed frame (as many pixels) as one of the config's shape.
            raise ValueError(
                f"video must be [batch, time, {hh}, {ww}, {ch}] (height, width, channels). Received: {static}"
            )
        batch, frames = ops.shape(video)[0], ops.shape(video)[1]
        n_ctx = c.context_frames
        if isinstance(frames, int) and frames <= n_ctx:
            raise ValueError(f"video needs more than {n_ctx} frames (the context); received {frames}")
        x = scale_pixels(video, self.compute_dtype)
        cond = condition_vectors(c, actions, states, frames)
        if cond is not None:
            cond = ops.cast(cond, self.compute_dtype)
        predicted = frames - n_ctx

        # Encoders see F_0 .. F_{T-2}: the last frame is never context for anything.
        past = ops.reshape(x[:, :-1], (-1, hh, ww, ch))
        past_cond = None if cond is None else ops.reshape(cond[:, :-1], (-1, c.condition_dim))
        encoded = self.encoder(past, condition=past_cond)
        encoded = ops.reshape(encoded, (batch, frames - 1, hh, ww, 2 * c.hidden))
        states_seq = self.core(encoded)  # [batch, T-1, H, W, L]; entry t-1 summarises F_0..F_{t-1}.
        context = states_seq[:, n_ctx - 1 :]
        if c.decoder_past_frames:
            context = ops.concatenate([context, self._past_pixels(x, n_ctx)], axis=-1)
        context = ops.reshape(context, (-1, hh, ww, c.context_channels))

        dec_cond = None if cond is None else ops.reshape(cond[:, n_ctx:], (-1, c.condition_dim))
        if c.model == "vpn":
            current = ops.reshape(x[:, n_ctx:], (-1, hh, ww, ch))
            logits = self.decoder(current, context, condition=dec_cond)
        else:
            logits = self.decoder(context, condition=dec_cond)
        return ops.reshape(logits, (batch, predicted, hh, ww, ch, c.num_classes))

    def _past_pixels(self, x, first):
        """`[batch, T - first, H, W, k * C]`: for each frame t >= first, the scaled pixels of frames t-1 .. t-k
        (most recent first; frames before the video's first are black, -1)."""
        k = self.config.decoder_past_frames
        frames = ops.shape(x)[1]
        pad = ops.repeat(-ops.ones_like(x[:, :1]), k, axis=1)
        padded = ops.concatenate([pad, x], axis=1)
        parts = [padded[:, first - 1 - i + k : frames - 1 - i + k] for i in range(k)]
        return ops.concatenate(parts, axis=-1)

    def decoder_context(self, h, recent=None):
        """The context the decoder reads for one frame: the ConvLSTM output `h` `[B, H, W, L]`, with the scaled
        pixels of the last `decoder_past_frames` frames (uint8 `recent` `[B, k, H, W, C]`, most recent first) when
        the config asks for them (for sampling; `call` builds the same for every frame at once)."""
        k = self.config.decoder_past_frames
        h = ops.cast(h, self.compute_dtype)
        if not k:
            return h
        past = scale_pixels(recent, self.compute_dtype)  # [B, k, H, W, C]
        past = ops.concatenate([past[:, i] for i in range(k)], axis=-1)
        return ops.concatenate([h, past], axis=-1)

    # -- Public API ----------------------------------------------------------------------------------------------

    def conditional_logits(self, video, actions=None, states=None, training=False):
        """Parameters of p(x_d | x_<d) for every predicted dimension d: `[batch, T_pred, H, W, C, K]` float32.

        Validates the inputs (dtype, rank, shape, value range, required vectors) with errors naming expected vs
        received. The predicted frames are those after the `context_frames` given ones.
        """
        video, actions, states = validate_inputs(self.config, video, actions, states)
        inputs = {"video": video}
        if actions is not None:
            inputs["actions"] = actions
        if states is not None:
            inputs["states"] = states
        return self(inputs, training=training)

    def log_prob(self, video, actions=None, states=None, training=False):
        """Log-probability in nats of every predicted dimension: float32 `[batch, T_pred, H, W, C]`.

        In Moving MNIST (sigmoid) mode this is minus the soft-target cross-entropy of Eq. 5 per pixel.
        """
        video, actions, states = validate_inputs(self.config, video, actions, states)
        logits = self.conditional_logits(video, actions, states, training=training)
        return distributions.log_prob(logits, video[:, self.config.context_frames :], self.config.output)


def build_model(config: VPNConfig, dtype=None) -> VideoPixelNetwork:
    """A built `VideoPixelNetwork` for `config` (weights created, ready to call or load weights into).

    Args:
        config: a `VPNConfig` (see `vpn_tf.get_config`).
        dtype: an optional Keras dtype policy, e.g. "mixed_bfloat16"; defaults to the global policy.
    """
    if not isinstance(config, VPNConfig):
        raise TypeError(f"build_model expects a VPNConfig (vpn_tf.get_config(name)). Received: {type(config).__name__}")
    model = VideoPixelNetwork(config, dtype=dtype)
    model.build()
    return model
