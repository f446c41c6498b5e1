import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from vpn_tf.sampling import CachedDecoder, Sampler, TemporalState, frame_conditions, pixel_noise, recent_frames


def _setup(preset, batch=2, **overrides):
    cfg = vpn_tf.get_config(preset, **overrides)
    model = vpn_tf.build_model(cfg)
    rng = np.random.default_rng(0)
    # Keras starts every bias at zero; the cached decoder moves biases around (`CachedDecoder._prepare`), so the
    # tests give them values.
    for v in model.weights:
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.3, v.shape).astype(v.dtype))
    ctx = rng.integers(0, 256, (batch, cfg.context_frames, *cfg.frame_shape)).astype(np.uint8)
    kw = {}
    if cfg.action_dim:
        kw["actions"] = rng.normal(size=(batch, cfg.context_frames + 2, 5)).astype("float32")
    if cfg.state_dim:
        kw["states"] = rng.normal(size=(batch, cfg.context_frames, 5)).astype("float32")
    return cfg, model, ctx, kw


# Frame shapes (height, width) the samplers are checked on: the presets' square one and two oblong ones, wider than
# tall and taller than wide, so that a row index taken for a column (or W for H) anywhere shows. 7 x 4 is narrower
# than the widest kernels below (7 and 5), whose taps then hang over both sides of every row.
# The oblong cases run with the large tests (they triple these tests' time); the default run keeps the square one and
# the oblong batch-groups case below, and tests/test_vpn_causality.py checks oblong masks.
FRAMES = pytest.mark.parametrize(
    "frame",
    [(8, 8), pytest.param((5, 9), marks=pytest.mark.large), pytest.param((7, 4), marks=pytest.mark.large)],
    ids=lambda f: f"{f[0]}x{f[1]}",
)


def _frame(frame):
    return {"height": frame[0], "width": frame[1]}


@FRAMES
@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {}),
        ("tiny_rgb", {}),
        ("tiny", {"block": "relu"}),
        ("tiny_rgb", {"block": "relu", "hidden": 6}),
        ("tiny_rgb", {"first_kernel_size": 7}),  # three rows above the pixel from the row context
        ("tiny_rgb", {"first_kernel_size": 1}),  # no taps left of or above the pixel in the input layer
        ("tiny", {"first_kernel_size": 1, "decoder_blocks": 0}),  # no spatial taps at all
        ("tiny_rgb", {"block": "relu", "context_wiring": "every_layer"}),
        ("tiny_rgb", {"context_wiring": "every_layer"}),
        ("tiny", {"decoder_past_frames": 3}),  # more past frames than the context holds: black before the video
        ("tiny_rgb", {"decoder_past_frames": 1, "context_kernel_size": 5}),
        ("tiny_rgb", {"decoder_past_frames": 2, "model": "baseline"}),
    ],
)
def test_cached_equals_naive_for_the_same_seed(preset, overrides, frame):
    cfg, model, ctx, kw = _setup(preset, **overrides, **_frame(frame))
    naive = Sampler(model, "naive").sample(ctx, 2, seed=(3, 4), **kw)
    for jit in (True, False):  # XLA runs the cached decoder's pixel loop, plain TensorFlow its row loop
        cached = Sampler(model, "cached", jit=jit).sample(ctx, 2, seed=(3, 4), **kw)
        assert cached.shape == (2, 2, cfg.height, cfg.width, cfg.channels) and cached.dtype == np.uint8
        np.testing.assert_array_equal(cached, naive)  # every pixel, borders included, both frames


@pytest.mark.parametrize(
    "preset, frame",
    [
        ("tiny", (8, 8)),
        ("tiny_rgb", (8, 8)),
        ("tiny", (5, 9)),
        pytest.param("tiny_rgb", (7, 4), marks=pytest.mark.large),  # ~30 s on one core
    ],
    ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else v,
)
def test_batch_groups_sample_what_the_whole_batch_samples(preset, frame):
    # Groups of rows run their pixel loops concurrently; each row keeps its noise, so the video is the same.
    cfg, model, ctx, kw = _setup(preset, batch=3, **_frame(frame))
    # Identical rows: only the per-row noise tells them apart, so a group restarting the noise at row 0 would show.
    ctx = np.repeat(ctx[:1], 3, axis=0)
    kw = {k: np.repeat(v[:1], 3, axis=0) for k, v in kw.items()}
    whole = Sampler(model, "cached", groups=1).sample(ctx, 2, seed=(5, 6), **kw)
    for groups in (2, 3, 8):  # 8 > batch: capped at one row per group
        np.testing.assert_array_equal(Sampler(model, "cached", groups=groups).sample(ctx, 2, seed=(5, 6), **kw), whole)
    # Without XLA (the row loop), groups of one row included: oneDNN's graph rewrite once broke those.
    for groups in (1, 2):
        grouped = Sampler(model, "cached", jit=False, groups=groups).sample(ctx, 2, seed=(5, 6), **kw)
        np.testing.assert_array_equal(grouped, whole)
    assert len(np.unique(whole.reshape(3, -1), axis=0)) == 3  # same context, different noise per row
    with pytest.raises(ValueError, match="groups must be >= 1"):
        Sampler(model, "cached", groups=0)
    with pytest.raises(ValueError, match="loop must be one of"):
        CachedDecoder(model, loop="column")


@FRAMES
def test_xla_and_graph_paths_agree(frame):
    cfg, model, ctx, kw = _setup("tiny_rgb", **_frame(frame))
    a = Sampler(model, jit=True).sample(ctx, 2, seed=(1, 1), **kw)
    b = Sampler(model, jit=False).sample(ctx, 2, seed=(1, 1), **kw)
    g = Sampler(model, jit=False).sample_graph(
        tf.constant(ctx), tf.constant(2), tf.constant([1, 1], tf.int64), kw["actions"], kw["states"], tf.constant(1.0)
    )
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, g.numpy())


def test_seeds_determine_the_video():
    cfg, model, ctx, _ = _setup("tiny")
    s = Sampler(model)
    a, b, c = (s.sample(ctx, 2, seed=sd) for sd in [(0, 1), (0, 1), (0, 2)])
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.2
    assert set(np.unique(a)) <= {0, 255}  # Moving MNIST mode: Bernoulli pixels


def test_noise_is_uniform_and_independent_of_jit():
    cfg = vpn_tf.get_config("tiny_rgb")
    f = lambda s: pixel_noise(cfg, s, 7, 64)  # noqa: E731
    seed = tf.constant([5, 6], tf.int64)
    u = f(seed).numpy()
    np.testing.assert_array_equal(u, tf.function(f, jit_compile=True)(seed).numpy())
    assert u.shape == (64, 3, 256) and 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert not np.array_equal(u, pixel_noise(cfg, seed, 8, 64).numpy())
    # A vector of pixel indices (the row loop draws a row's noise at once) gives each pixel's own numbers.
    row = pixel_noise(cfg, seed, tf.range(5, 9), 64).numpy()
    assert row.shape == (4, 64, 3, 256)
    np.testing.assert_array_equal(row[2], u)
    np.testing.assert_array_equal(pixel_noise(cfg, seed, tf.range(5, 9), 4, batch_offset=3).numpy()[2], u[3:7])


def test_first_pixel_is_drawn_from_its_conditional():
    # The first pixel of the first generated frame depends only on the context: draw it for many seeds at once
    # (a batch of identical contexts gets independent noise) and compare with the model's probabilities.
    for preset in ("tiny", "tiny_rgb"):
        cfg, model, ctx, kw = _setup(preset, batch=1)
        n = 3000
        ctx_n = np.repeat(ctx, n, axis=0)
        kw_n = {k: np.repeat(v, n, axis=0) for k, v in kw.items()}
        frame = Sampler(model).sample(ctx_n, 1, seed=(9, 9), **kw_n)[:, 0, 0, 0, 0].astype(np.float64)
        video = np.concatenate([ctx, np.zeros_like(ctx[:, :1])], axis=1)
        vec = {k: v[:, : cfg.context_frames + 1] for k, v in kw.items()}
        logits = model.conditional_logits(video, **vec).numpy()[0, 0, 0, 0, 0]
        if cfg.output == "sigmoid":
            p = 1 / (1 + np.exp(-logits[0]))
            freq = (frame == 255).mean()
            assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3
        else:
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            mean = (probs * np.arange(256)).sum()
            sd = np.sqrt((probs * (np.arange(256) - mean) ** 2).sum())
            assert abs(frame.mean() - mean) < 4 * sd / np.sqrt(n)


@FRAMES
def test_frame_by_frame_temporal_state_matches_the_teacher_forced_model(frame):
    cfg, model, _, _ = _setup("tiny_rgb", **_frame(frame))
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (2, 4, *cfg.frame_shape)).astype(np.uint8)
    actions = rng.normal(size=(2, 4, 5)).astype("float32")
    states = rng.normal(size=(2, 4, 5)).astype("float32")
    ref = model.conditional_logits(video, actions=actions, states=states).numpy()
    conds = frame_conditions(cfg, tf.constant(actions), tf.constant(states), 4, 2)
    temporal = TemporalState(model)
    for k, t in enumerate(range(cfg.context_frames, 4)):
        h, _ = temporal.run(tf.constant(video[:, :t]), conds[:, :t])
        x = tf.cast(video[:, t], tf.float32) / 127.5 - 1
        logits = model.decoder(x, h, condition=conds[:, t]).numpy()
        np.testing.assert_allclose(logits, ref[:, k], atol=1e-4)


def _probabilities(cfg, logits):
    logits = np.asarray(logits, np.float64)
    if cfg.output == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


@FRAMES
@pytest.mark.parametrize("loop", ["pixel", "row"])
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {}),
        ("tiny_rgb", {}),
        ("tiny_rgb", {"block": "relu"}),
        ("tiny_rgb", {"context_wiring": "every_block"}),
        ("tiny_rgb", {"block": "relu", "context_wiring": "every_layer", "first_kernel_size": 5}),
        ("tiny", {"decoder_past_frames": 2, "context_kernel_size": 5}),
        ("tiny_rgb", {"decoder_past_frames": 3}),
    ],
)
def test_cached_sampler_draws_from_the_teacher_forced_conditionals(preset, overrides, jit, loop, frame):
    """Every dimension the cached sampler draws comes from the distribution the model assigns it given everything
    sampled before: its probabilities equal the teacher-forced conditionals on the sampled video (conditioning,
    context and all previous colours and pixels included). Byte equality with the naive sampler can miss a wrong
    distribution that rarely changes a draw; this cannot."""
    cfg, model, ctx, kw = _setup(preset, **overrides, **_frame(frame))
    sampler = Sampler(model, "cached", groups=1)
    decoder = CachedDecoder(model, loop=loop)
    generate = tf.function(decoder.generate_frame, jit_compile=jit, reduce_retracing=True)
    conds = frame_conditions(
        cfg, kw.get("actions"), None if "states" not in kw else tf.constant(kw["states"]), cfg.context_frames + 2, 2
    )
    video = tf.constant(ctx)
    state = sampler.temporal.run(video, None if conds is None else conds[:, : cfg.context_frames])
    seed = tf.constant([5, 6], tf.int64)
    drawn = []
    for k in range(2):
        t = cfg.context_frames + k
        cond_t = None if conds is None else conds[:, t]
        decoder_context = model.decoder_context(state[0], recent_frames(cfg, video))
        frame, logits = generate(decoder_context, cond_t, seed + k, tf.constant(1.0), return_logits=True)
        drawn.append(logits.numpy())
        video = tf.concat([video, frame[:, None]], axis=1)
        state = sampler.temporal.step(state, frame, cond_t)
    teacher = model.conditional_logits(video, **kw).numpy()  # [B, 2, H, W, C, K]
    sampled = np.stack(drawn, axis=1)
    np.testing.assert_allclose(_probabilities(cfg, sampled), _probabilities(cfg, teacher), atol=1e-5)


@pytest.mark.parametrize("loop", ["pixel", "row"])
def test_the_distribution_test_catches_a_decoder_that_drops_the_context(monkeypatch, loop):
    """The check above fails for the bug byte equality barely saw: the cached decoder ignoring the context."""
    from vpn_tf.sampling import cached

    cfg, model, ctx, kw = _setup("tiny_rgb")
    real = cached._PixelStepper.frame_map

    def without_context(self, fn):  # the context's maps (not the conditioning biases) read as zeros
        value = real(self, fn)
        return tf.nest.map_structure(lambda t: t * 0.0, value) if isinstance(value, tuple) else value

    monkeypatch.setattr(cached._PixelStepper, "frame_map", without_context)
    sampler = Sampler(model, "cached", groups=1)
    decoder = CachedDecoder(model, loop=loop)
    conds = frame_conditions(cfg, kw["actions"], tf.constant(kw["states"]), cfg.context_frames + 2, 2)
    state = sampler.temporal.run(tf.constant(ctx), conds[:, : cfg.context_frames])
    t = cfg.context_frames
    frame, logits = decoder.generate_frame(
        state[0], conds[:, t], tf.constant([5, 6], tf.int64), 1.0, return_logits=True
    )
    video = np.concatenate([ctx, frame.numpy()[:, None]], axis=1)
    teacher = model.conditional_logits(video, actions=kw["actions"][:, : t + 1], states=kw["states"]).numpy()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(_probabilities(cfg, logits.numpy()), _probabilities(cfg, teacher[:, 0]), atol=1e-5)


@FRAMES
def test_baseline_samples_every_pixel_at_once(frame):
    cfg, model, ctx, kw = _setup("tiny_rgb", model="baseline", **_frame(frame))
    s = Sampler(model)
    a = s.sample(ctx, 2, seed=(1, 2), **kw)
    np.testing.assert_array_equal(a, s.sample(ctx, 2, seed=(1, 2), **kw))
    assert a.shape == (2, 2, *cfg.frame_shape)
    with pytest.raises(ValueError, match="method"):
        Sampler(model, "beam")


def test_bad_sampling_inputs():
    cfg, model, ctx, kw = _setup("tiny_rgb")
    s = Sampler(model)
    with pytest.raises(ValueError, match="uint8"):
        s.sample(ctx.astype("float32"), 1, **kw)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        s.sample(ctx, 0, **kw)
    with pytest.raises(ValueError, match="actions must cover at least 5 frames"):
        s.sample(ctx, 3, **kw)  # actions cover context + 2 only
    with pytest.raises(ValueError, match="pass `actions`"):
        s.sample(ctx, 1, states=kw["states"])
    with pytest.raises(ValueError, match="temperature"):
        s.sample(ctx, 1, temperature=0.0, **kw)
    # Vectors given to a model that takes none are refused, not silently ignored.
    _, plain, plain_ctx, _ = _setup("tiny")
    for name in ("actions", "states"):
        vectors = {name: np.zeros((plain_ctx.shape[0], plain_ctx.shape[1] + 1, 2), np.float32)}
        with pytest.raises(ValueError, match=f"{name} were given, but tiny is not conditioned on {name}"):
            Sampler(plain).sample(plain_ctx, 1, **vectors)


def test_ink_ratio_per_predicted_frame():
    from vpn_tf.diagnostics import ink_ratio

    truth = np.zeros((2, 3, 4, 4, 1), np.uint8)
    truth[:, :, 0, 0] = 200  # 200 ink per frame and sequence
    samples = truth.copy()
    samples[0, 1] = 0  # sequence 0 loses frame 1
    samples[:, 2, 1, 1] = 100  # frame 2 gains 100 in both sequences
    np.testing.assert_allclose(ink_ratio(truth, samples), [1.0, 0.5, 1.5])


@pytest.mark.parametrize("preset", ["tiny", "tiny_rgb"])
def test_ink_diagnostics_separate_one_step_and_fed_back_samples(preset):
    from vpn_tf.diagnostics import ink_diagnostics

    cfg, model, _, _ = _setup(preset)
    rng = np.random.default_rng(4)
    t = cfg.context_frames + 3
    video = rng.integers(0, 256, (3, t, *cfg.frame_shape)).astype(np.uint8)
    kw = {}
    if cfg.action_dim:
        kw = {"actions": rng.normal(size=(3, t, 5)).astype("float32"), "states": rng.normal(size=(3, t, 5))}
        kw["states"] = kw["states"].astype("float32")
    out = ink_diagnostics(model, video, seed=(2, 3), **kw)
    names = {"free_running", "one_step", "teacher_forced_mean"} | (
        {"one_step_binarised_context"} if cfg.output == "sigmoid" else set()
    )
    assert set(out) == names and all(len(v) == 3 for v in out.values())
    # The first predicted frame has the true context either way and the same noise: the same frame.
    assert out["free_running"][0] == out["one_step"][0]
    if cfg.output == "sigmoid":
        p = 1 / (1 + np.exp(-model.conditional_logits(video).numpy()[..., 0, 0]))  # [N, 3, H, W]
        expected = (255 * p).sum((2, 3)).mean(0) / video[:, cfg.context_frames :].sum((2, 3, 4)).mean(0)
        np.testing.assert_allclose(out["teacher_forced_mean"], expected, rtol=1e-5)
