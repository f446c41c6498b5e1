"""Reduced precision: float16 loss scaling through overflows, float32 logits, and the XLA and scatter-free paths
that GPUs depend on (checked here on the CPU)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from datasets import pipelines
from tests.scripts import run_script
from vpn_tf import distributions, training
from vpn_tf.layers import multiplicative_unit
from vpn_tf.sampling import Sampler


def _state_and_step(config, mixed_precision="float32", initial_loss_scale=None, jit=False):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        state = training.create_train_state(config, mixed_precision, initial_loss_scale)
    ds = strategy.distribute_datasets_from_function(pipelines.distributed_train_dataset_fn(config, 0, 0))
    return state, training.make_train_step(config, state, strategy, jit=jit), iter(ds)


def _weights(state):
    return [v.numpy().copy() for v in state.model.trainable_variables]


def test_float16_overflow_skips_the_step_halves_the_scale_and_training_goes_on():
    config = vpn_tf.get_config("tiny")
    state, step, batches = _state_and_step(config, "float16", initial_loss_scale=2.0**40)
    before = _weights(state)
    step(next(batches))
    m = state.metrics.read()
    # Skipped: weights untouched, scale halved, counted; the loss is finite and the norm kept out of the mean.
    assert m["skipped"] == 1 and m["steps"] == 1 and np.isfinite(m["loss"]) and np.isnan(m["grad_norm"])
    assert float(state.optimizer.dynamic_scale.numpy()) == 2.0**39
    for b, v in zip(before, state.model.trainable_variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())
    # The scale keeps halving until a step fits; from then on the steps update the weights.
    for _ in range(40):
        step(next(batches))
    m = state.metrics.read()
    assert 0 < m["skipped"] < 40 and np.isfinite(m["grad_norm"]) and np.isfinite(m["loss"])
    assert float(state.optimizer.dynamic_scale.numpy()) < 2.0**30
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, state.model.trainable_variables, strict=True))


def test_a_non_finite_gradient_is_fatal_unless_a_loss_scale_explains_it():
    m = training.StepMetrics()
    m.add(1.0, 2.0, float("inf"), applied=False)
    m.add(3.0, 4.0, 5.0, applied=True)
    out = m.read()
    assert out == {"loss": 2.0, "metric": 3.0, "grad_norm": 5.0, "steps": 2, "skipped": 1}
    ok = {"loss": 1.0, "grad_norm": 5.0, "steps": 2, "skipped": 0}
    assert training.nonfinite_problem(ok, None) is None
    assert "or gradient norm (inf)" in training.nonfinite_problem({**ok, "grad_norm": float("inf")}, None)
    assert "Non-finite loss (nan)" in training.nonfinite_problem({**ok, "loss": float("nan")}, 2.0**15)
    skipped = {"loss": 1.0, "grad_norm": float("nan"), "steps": 2, "skipped": 2}
    assert training.nonfinite_problem(skipped, 2.0**14) is None  # overflows: counted, not fatal
    # Below a scale of 1 the gradients are scaled down: still not finite means a real NaN, however many skips.
    assert "even at loss scale 0.5" in training.nonfinite_problem(skipped, 0.5)


@pytest.mark.large
def test_train_py_float16_finishes_a_run_through_overflows_and_resumes_exactly(tmp_path):
    flags = ("--config", "tiny", "--no_progress", "--mixed_precision", "float16", "--initial_loss_scale", "1e12")
    common = ("--eval_every", "100", "--checkpoint_every", "15")
    # The last run also draws its end-of-run samples in float16; the others need not.
    run_script("train.py", *flags, "--workdir", tmp_path / "straight", "--steps", "45", *common, "--no_samples")
    run_script("train.py", *flags, "--workdir", tmp_path / "resumed", "--steps", "15", *common, "--no_samples")
    out = run_script("train.py", *flags, "--workdir", tmp_path / "resumed", "--steps", "45", *common)
    eval_tags = {
        v.tag
        for f in (tmp_path / "resumed" / "eval").iterdir()
        for e in tf.compat.v1.train.summary_iterator(str(f))
        for v in e.summary.value
    }
    assert "samples/truth_then_model" in eval_tags, out.stderr[-2000:]
    events = tmp_path / "straight" / "train"
    skipped = []
    for f in sorted(events.iterdir()):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            skipped += [float(tf.make_ndarray(v.tensor)) for v in e.summary.value if v.tag == "skipped_steps"]
    assert sum(skipped) >= 10, "1e12 must overflow float16 gradients for a while"
    readers = [tf.train.load_checkpoint(str(tmp_path / r / "checkpoints" / "ckpt-45")) for r in ("straight", "resumed")]
    keys = [k for k in readers[0].get_variable_to_shape_map() if not k.startswith("_CHECKPOINTABLE")]
    assert any("dynamic_scale" in k for k in keys)
    for k in keys:
        np.testing.assert_array_equal(readers[0].get_tensor(k), readers[1].get_tensor(k), err_msg=k)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_logits_are_computed_in_float32_under_mixed_precision(policy):
    config = vpn_tf.get_config("tiny_rgb")
    model = vpn_tf.build_model(config, dtype=policy)
    head = model.decoder.head
    assert head.top.compute_dtype == policy.split("_")[1]
    assert head.logits.compute_dtype == "float32" and head.logits.kernel.dtype == "float32"
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (2, 4, *config.frame_shape)).astype(np.uint8)
    actions = rng.normal(size=(2, 4, 5)).astype("float32")
    states = rng.normal(size=(2, 2, 5)).astype("float32")
    assert model.conditional_logits(video, actions, states).dtype == "float32"


def test_bfloat16_log_prob_stays_close_to_float32_with_the_same_weights():
    config = vpn_tf.get_config("tiny_rgb")
    full = vpn_tf.build_model(config)
    rng = np.random.default_rng(1)
    full.set_weights([rng.normal(0, 0.2, w.shape).astype("float32") for w in full.get_weights()])
    half = vpn_tf.build_model(config, dtype="mixed_bfloat16")
    half.set_weights(full.get_weights())
    video = rng.integers(0, 256, (2, 4, *config.frame_shape)).astype(np.uint8)
    kw = dict(actions=rng.normal(size=(2, 4, 5)).astype("float32"), states=rng.normal(size=(2, 2, 5)).astype("f4"))
    a = -distributions.per_dimension(full.log_prob(video, **kw)).numpy()
    b = -distributions.per_dimension(half.log_prob(video, **kw)).numpy()
    # Stated tolerance: 1% of the nats/dim (bfloat16 keeps 8 mantissa bits inside the network).
    np.testing.assert_allclose(b, a, rtol=1e-2)
    assert not np.array_equal(a, b)  # the two really computed differently


def test_cached_sampler_draws_from_the_bfloat16_models_conditionals():
    """Under bfloat16 the cached decoder (conditioning, context maps, float32 logits) still computes the model's own
    conditionals, up to bfloat16 rounding."""
    from tests.test_sampling import _setup

    for loop in ("row", "pixel"):
        cfg, full, ctx, kw = _setup("tiny_rgb")
        model = vpn_tf.build_model(cfg, dtype="mixed_bfloat16")
        model.set_weights(full.get_weights())
        sampler = Sampler(model, groups=1)
        conds = vpn_tf.sampling.frame_conditions(cfg, kw["actions"], kw["states"], cfg.context_frames + 1)
        h, _ = sampler.temporal.run(tf.constant(ctx), conds[:, : cfg.context_frames])
        decoder = vpn_tf.sampling.CachedDecoder(model, loop=loop)
        frame, logits = decoder.generate_frame(
            h, conds[:, cfg.context_frames], tf.constant([1, 2], tf.int64), 1.0, return_logits=True
        )
        video = np.concatenate([ctx, frame.numpy()[:, None]], axis=1)
        teacher = model.conditional_logits(video, kw["actions"][:, : cfg.context_frames + 1], kw["states"]).numpy()
        assert logits.dtype == tf.float32
        spread = np.abs(teacher).max()
        np.testing.assert_allclose(logits.numpy(), teacher[:, 0], atol=0.05 * spread)
        # Negative control: the same check fails for a cached pass that drops the context.
        no_context = decoder.generate_frame(
            tf.zeros_like(h), conds[:, cfg.context_frames], tf.constant([1, 2], tf.int64), 1.0, return_logits=True
        )[1]
        assert np.abs(no_context.numpy() - teacher[:, 0]).max() > 0.05 * spread


def _gather_log_prob(logits, pixels):
    """The categorical log-prob as it was computed before (a gather): the negative control of the HLO test."""
    log_p = tf.nn.log_softmax(logits)
    return tf.gather(log_p, tf.cast(pixels, tf.int32)[..., None], axis=-1, batch_dims=len(logits.shape) - 1)[..., 0]


def test_categorical_log_prob_values_and_gradients_match_the_gather():
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(0, 3, (2, 3, 4, 3, 256)).astype("float32"))
    pixels = tf.constant(rng.integers(0, 256, (2, 3, 4, 3)).astype(np.uint8))
    weights = tf.constant(rng.normal(size=(2, 3, 4, 3)).astype("float32"))
    out = []
    for fn in (distributions.categorical_log_prob, _gather_log_prob):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = fn(logits, pixels)
            loss = tf.reduce_sum(value * weights)
        out.append((value.numpy(), tape.gradient(loss, logits).numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-6, atol=1e-7)


def _training_hlo(config, log_prob_fn=None, monkeypatch=None):
    if log_prob_fn is not None:
        monkeypatch.setattr(distributions, "categorical_log_prob", log_prob_fn)
    model = vpn_tf.build_model(config)
    rng = np.random.default_rng(0)
    batch = {
        "video": tf.constant(rng.integers(0, 256, (2, 4, *config.frame_shape)).astype(np.uint8)),
        "actions": tf.constant(rng.normal(size=(2, 4, 5)).astype("float32")),
        "states": tf.constant(rng.normal(size=(2, 4, 5)).astype("float32")),
    }

    @tf.function(jit_compile=True)
    def loss_and_grads(batch):
        with tf.GradientTape() as tape:
            log_prob = training.batch_log_prob(config, model, batch, training=True)
            loss = tf.reduce_mean(training.per_example_loss(config, log_prob))
        return loss, tape.gradient(loss, model.trainable_variables)

    return loss_and_grads.experimental_get_compiler_ir(batch)(stage="hlo")


def test_the_rgb_training_step_compiles_without_a_scatter(monkeypatch):
    config = vpn_tf.get_config("tiny_rgb")
    assert "scatter" not in _training_hlo(config).lower()
    # Negative control: the gather-based log-prob's gradient is a scatter, and the test sees it.
    assert "scatter" in _training_hlo(config, _gather_log_prob, monkeypatch).lower()


def test_unfused_gating_gives_the_same_step(monkeypatch):
    config = vpn_tf.get_config("tiny")
    calls = []
    fused = multiplicative_unit._gating_xla
    monkeypatch.setattr(multiplicative_unit, "_gating_xla", lambda *a: calls.append(1) or fused(*a))
    results = []
    for on in (True, False):
        multiplicative_unit.set_xla_gate_fusion(on)
        calls.clear()
        try:
            keras.utils.set_random_seed(0)
            state, step, batches = _state_and_step(config)
            step(next(batches))
            results.append((state.metrics.read(), _weights(state)))
        finally:
            multiplicative_unit.set_xla_gate_fusion(True)
        # Traced with the fused gating, or without it: the switch decides.
        assert bool(calls) == on
    (m1, w1), (m2, w2) = results
    assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-6)
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
