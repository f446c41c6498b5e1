import keras
import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from vpn_tf import distributions as D
from vpn_tf.cost import forward_macs_per_frame, parameter_count, training_flops_per_sequence


def _data(cfg, batch=2, frames=None, seed=0):
    rng = np.random.default_rng(seed)
    t = frames or cfg.num_frames
    video = rng.integers(0, 256, size=(batch, t, *cfg.frame_shape)).astype(np.uint8)
    kw = {}
    if cfg.action_dim:
        kw["actions"] = rng.normal(size=(batch, t, cfg.action_dim)).astype("float32")
    if cfg.state_dim:
        kw["states"] = rng.normal(size=(batch, t, cfg.state_dim)).astype("float32")
    return video, kw


@pytest.mark.parametrize("preset", ["tiny", "tiny_rgb"])
@pytest.mark.parametrize("model_kind", ["vpn", "baseline"])
def test_log_prob_equals_sum_of_per_dimension_terms(preset, model_kind):
    cfg = vpn_tf.get_config(preset, model=model_kind)
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg)
    lp = model.log_prob(video, **kw).numpy()
    logits = model.conditional_logits(video, **kw).numpy().astype(np.float64)
    target = video[:, cfg.context_frames :]
    assert lp.shape == target.shape and lp.dtype == np.float32
    if cfg.output == "sigmoid":
        z = target / 255.0
        ref = -(np.logaddexp(0, logits[..., 0]) - z * logits[..., 0])
    else:
        lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        ref = np.take_along_axis(logits, target[..., None].astype(int), -1)[..., 0] - lse
        assert np.all(lp <= 0)
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(D.per_frame(lp).numpy().sum(), ref.sum(), rtol=1e-5)


def test_log_prob_is_one_graph_over_frames_and_accepts_longer_videos():
    cfg = vpn_tf.get_config("tiny_rgb")
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg, frames=cfg.eval_num_frames)
    kw["states"] = kw["states"][:, : cfg.context_frames]  # states of predicted frames are never needed (§6.1)
    lp = tf.function(model.log_prob)(video, **kw)
    assert lp.shape == (2, cfg.eval_num_frames - cfg.context_frames, *cfg.frame_shape)


def test_states_of_predicted_frames_are_ignored_and_actions_matter():
    cfg = vpn_tf.get_config("tiny_rgb")
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg)
    ref = model.log_prob(video, **kw).numpy()
    states = kw["states"].copy()
    states[:, cfg.context_frames :] += 5.0
    np.testing.assert_array_equal(model.log_prob(video, actions=kw["actions"], states=states).numpy(), ref)
    states = kw["states"].copy()
    states[:, 0] += 5.0
    assert np.abs(model.log_prob(video, actions=kw["actions"], states=states).numpy() - ref).max() > 1e-5
    actions = kw["actions"].copy()
    actions[:, -1] += 5.0  # the last frame's action conditions only its decoder
    diff = np.abs(model.log_prob(video, actions=actions, states=kw["states"]).numpy() - ref)
    assert diff[:, -1].max() > 1e-5 and diff[:, :-1].max() == 0.0


@pytest.mark.parametrize("preset, model_kind", [("tiny", "vpn"), ("tiny_rgb", "vpn"), ("tiny_rgb", "baseline")])
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, preset, model_kind):
    cfg = vpn_tf.get_config(preset, model=model_kind, block="relu" if model_kind == "baseline" else "rmb")
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg)
    ref = model.conditional_logits(video, **kw).numpy()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, vpn_tf.VideoPixelNetwork) and loaded.config == cfg
    np.testing.assert_array_equal(loaded.conditional_logits(video, **kw).numpy(), ref)


@pytest.mark.parametrize("preset", vpn_tf.preset_names())
def test_every_preset_builds_with_the_analytic_parameter_count(preset):
    cfg = vpn_tf.get_config(preset)
    model = vpn_tf.build_model(cfg)
    counts = parameter_count(cfg)
    assert model.count_params() == counts["total"]
    assert model.encoder.count_params() == counts["encoder"]
    assert model.core.count_params() == counts["conv_lstm"]
    assert model.decoder.count_params() == counts["decoder"]


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {}),
        ("tiny_rgb", {}),
        ("tiny_rgb", {"model": "baseline"}),
        ("tiny_rgb", {"block": "relu", "context_wiring": "every_layer", "decoder_past_frames": 2}),
    ],
)
def test_multiply_adds_count_every_kernel_at_every_pixel_of_an_oblong_frame(preset, overrides):
    """`forward_macs_per_frame` counts each convolution's whole kernel at each of the H * W pixels: the built model's
    kernel entries times H * W, so W x H frames cost what H x W ones do, and the cost follows the area alone."""
    macs = {}
    for h, w in ((5, 9), (9, 5), (8, 8)):
        cfg = vpn_tf.get_config(preset, height=h, width=w, **overrides)
        model = vpn_tf.build_model(cfg)
        macs[h, w] = forward_macs_per_frame(cfg)
        for part, layer in (("encoder", model.encoder), ("conv_lstm", model.core), ("decoder", model.decoder)):
            kernel_entries = sum(int(np.prod(v.shape)) for v in layer.weights if len(v.shape) == 4)
            assert macs[h, w][part] == kernel_entries * h * w, part
        assert parameter_count(cfg) == parameter_count(cfg.replace(height=8, width=8))  # weights ignore the frame
        assert model.count_params() == parameter_count(cfg)["total"]
    assert macs[5, 9] == macs[9, 5]
    assert all(macs[5, 9][part] * 64 == macs[8, 8][part] * 45 for part in macs[8, 8])
    flops = {hw: training_flops_per_sequence(vpn_tf.get_config(preset, height=hw[0], width=hw[1])) for hw in macs}
    assert flops[5, 9] == flops[9, 5] and flops[5, 9] * 64 == flops[8, 8] * 45


def test_a_transposed_video_is_refused_not_reshaped():
    # A W x H frame has as many pixels as an H x W one: a reshape would take it and scramble its rows.
    cfg = vpn_tf.get_config("tiny_rgb", height=7, width=4)
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg)
    swapped = video.transpose(0, 1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"height must be 7 .*\[None, None, 7, 4, 3\].*\(2, 4, 4, 7, 3\)"):
        model.log_prob(swapped, **kw)
    with pytest.raises(ValueError, match=r"video must be \[batch, time, 7, 4, 3\].*\(2, 4, 4, 7, 3\)"):
        model({"video": tf.constant(swapped), **kw})
    assert model({"video": tf.constant(video), **kw}).shape == (2, 2, 7, 4, 3, 256)


@pytest.mark.large
@pytest.mark.parametrize("preset", ["moving_mnist_paper", "robot_pushing_paper"])
def test_paper_widths_take_one_training_step(preset):
    # Paper widths, depths and output heads; 32x32 frames and one context frame keep the step to a few seconds.
    cfg = vpn_tf.get_config(preset, height=32, width=32, num_frames=2, context_frames=1)
    model = vpn_tf.build_model(cfg)
    video, kw = _data(cfg, batch=1)
    opt = keras.optimizers.RMSprop(cfg.learning_rate)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.log_prob(video, **kw))
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(loss.numpy())
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))


@pytest.mark.parametrize("preset", ["tiny", "tiny_rgb"])
def test_bfloat16_mixed_precision_is_close_to_float32(preset):
    cfg = vpn_tf.get_config(preset)
    ref_model = vpn_tf.build_model(cfg)
    mp_model = vpn_tf.build_model(cfg, dtype="mixed_bfloat16")
    mp_model.set_weights(ref_model.get_weights())
    video, kw = _data(cfg)
    ref = ref_model.log_prob(video, **kw).numpy()
    lp = mp_model.log_prob(video, **kw)
    assert lp.dtype == tf.float32 and np.all(np.isfinite(lp.numpy()))
    assert mp_model.encoder.blocks[0].compute_dtype == "bfloat16"
    # Per frame, bfloat16 rounding (8 bits of mantissa) may move the total by well under a percent.
    np.testing.assert_allclose(D.per_frame(lp).numpy(), D.per_frame(ref).numpy(), rtol=0.02)


class TestBadInput:
    cfg = vpn_tf.get_config("tiny_rgb")

    @pytest.fixture(scope="class")
    def model(self):
        return vpn_tf.build_model(self.cfg)

    def _ok(self):
        return _data(self.cfg)

    def test_float_video(self, model):
        video, kw = self._ok()
        with pytest.raises(ValueError, match="uint8.*float32"):
            model.log_prob(video.astype("float32"), **kw)

    def test_wrong_rank(self, model):
        video, kw = self._ok()
        with pytest.raises(ValueError, match=r"rank 5.*Received: shape=\(4, 8, 8, 3\)"):
            model.log_prob(video[0], **kw)

    def test_wrong_size_and_channels(self, model):
        video, kw = self._ok()
        with pytest.raises(ValueError, match=r"height must be 8.*\[None, None, 8, 8, 3\].*\(2, 4, 7, 8, 3\)"):
            model.log_prob(video[:, :, :7], **kw)
        with pytest.raises(ValueError, match=r"channels must be 3"):
            model.log_prob(video[..., :1], **kw)

    def test_too_few_frames(self, model):
        video, kw = self._ok()
        with pytest.raises(ValueError, match="at least 3 frames.*Received: 2 frames"):
            model.log_prob(video[:, :2], **kw)

    def test_value_range(self, model):
        video, kw = self._ok()
        bad = video.astype(np.int32)
        bad[0, 0, 0, 0, 0] = 300
        with pytest.raises(ValueError, match=r"\[0, 255\].*max=300"):
            model.log_prob(bad, **kw)
        # In range, int32 is accepted and equals uint8.
        np.testing.assert_array_equal(
            model.log_prob(video.astype(np.int32), **kw).numpy(), model.log_prob(video, **kw).numpy()
        )

    def test_missing_or_malformed_vectors(self, model):
        video, kw = self._ok()
        with pytest.raises(ValueError, match="conditioned on actions.*pass `actions`"):
            model.log_prob(video, states=kw["states"])
        with pytest.raises(ValueError, match="conditioned on states"):
            model.log_prob(video, actions=kw["actions"])
        with pytest.raises(ValueError, match=r"actions must have shape \[batch, time, 5\].*\(2, 4, 4\)"):
            model.log_prob(video, actions=kw["actions"][..., :4], states=kw["states"])
        with pytest.raises(ValueError, match="actions must cover at least 4 frames"):
            model.log_prob(video, actions=kw["actions"][:, :3], states=kw["states"])
        nan = kw["actions"].copy()
        nan[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="actions must be finite"):
            model.log_prob(video, actions=nan, states=kw["states"])

    def test_vectors_for_unconditional_config(self):
        cfg = vpn_tf.get_config("tiny")
        model = vpn_tf.build_model(cfg)
        video, _ = _data(cfg)
        with pytest.raises(ValueError, match="not action-conditional"):
            model.log_prob(video, actions=np.zeros((2, 4, 5), "float32"))

    def test_build_model_needs_a_config(self):
        with pytest.raises(TypeError, match="VPNConfig"):
            vpn_tf.build_model("tiny")
