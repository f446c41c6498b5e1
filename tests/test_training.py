import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from tests.scripts import ENV, ROOT, run_command, run_script, script_command
from tests.shared_results import once_per_session
from vpn_tf import training

_TINY = ("--config", "tiny", "--no_progress", "--workdir")


def _train(workdir, *flags, env=None, timeout=300, check=True, config=("--config", "tiny")):
    return run_script(
        "train.py", *config, "--no_progress", "--workdir", workdir, *flags, env=env, timeout=timeout, check=check
    )


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """A few simulated pushing sequences (pybullet), train in 2 files and validation."""
    d = tmp_path_factory.mktemp("pushing_sim")
    for split, num in (("train", 8), ("val", 4)):
        cmd = ["-m", "datasets.pushing_sim", "--out", d, "--split", split, "--num", num, "--num_shards", 2]
        subprocess.run([sys.executable, *map(str, cmd)], env=ENV, cwd=ROOT, check=True, capture_output=True)
    return str(d)


@pytest.fixture(params=["grey", "rgb"])
def config_flags(request, sim_dir):
    """train.py flags of a grey (tiny: Moving MNIST, sigmoid) and an RGB (tiny_rgb on simulated pushing, softmax,
    actions and states) config, and the metric each prints."""
    if request.param == "grey":
        return ("--config", "tiny"), "nats_per_frame"
    return ("--config", "tiny_rgb", "--dataset", "pushing_sim", "--data_dir", sim_dir), "nats_per_dim"


def _variables(ckpt_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def _event_tags(logdir):
    tags = set()
    for f in os.listdir(logdir):
        for e in tf.compat.v1.train.summary_iterator(os.path.join(logdir, f)):
            tags |= {v.tag for v in e.summary.value}
    return tags


@pytest.mark.large
def test_three_steps_through_train_py_write_checkpoints_and_summaries(tmp_path, trained):
    out = _train(tmp_path, "--steps", "3", "--log_every", "1")
    assert "nats_per_frame=" in out.stdout and "lower_bound=" in out.stdout
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["name"] == "tiny" and cfg["steps"] == 3
    train_tags = _event_tags(tmp_path / "train")
    assert {"nats_per_frame", "loss_nats_per_dim", "grad_norm", "learning_rate", "sequences_per_second"} <= train_tags
    eval_tags = _event_tags(tmp_path / "eval")
    assert {"nats_per_frame", "nats_per_frame_stderr", "lower_bound"} <= eval_tags
    assert "samples/truth_then_model" in eval_tags
    # evaluate.py reads the run back.
    ev = run_script("evaluate.py", "--workdir", tmp_path, "--split", "validation", check=True)
    assert "tiny validation:" in ev.stdout and "nats/frame" in ev.stdout and "lower bound" in ev.stdout
    sampled = ("--ink", "2", "--ink_diagnostics", "--legibility", "2", "--num_sequences", "2", "--ssim", "1")
    # The other evaluate.py calls run its main in this process (its start-up is checked above).
    diag = run_command("evaluate.py", "--workdir", tmp_path, *sampled, "--best_of", "2", "--json", tmp_path / "d.json")
    assert diag.returncode == 0, diag.stderr[-3000:]
    # Strict JSON: one sequence's unknown standard errors are null, never a bare NaN.
    report = json.loads((tmp_path / "d.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    ssim = report["ssim"]
    assert ssim["sequences"] == 1 and ssim["samples"] == 2 and ssim["held_still"]["stderr"] == [None, None]
    assert len(ssim["best_of_k"]["mean"]) == len(ssim["binarised_truth_best_of_k"]["mean"]) == 2  # sigmoid: binary ref
    assert "SSIM with the true frame (1 sequences, 2 samples each" in diag.stdout
    assert "binarised truth, best of 2" in diag.stdout
    assert len(report["ink_ratio"]) == 2 and len(report["ink_diagnostics"]["free_running"]) == 2
    assert len(report["samples"]["tracking"]["samples"]["mean"]) == 2 and "legibility" not in report["samples"]
    assert "sampled / true ink per predicted frame (2 sequences" in diag.stdout
    assert "tracking (correlation of blurred frames with the truth):" in diag.stdout
    # --against: another run scored on the same sequences, the difference with its paired standard error.
    other = trained("tiny")
    flags = ("--workdir", tmp_path, "--split", "validation", "--num_sequences", "12", "--batch_size", "5")
    ev = run_command("evaluate.py", *flags, "--against", other, "--per_frame", "--json", tmp_path / "m.json")
    assert ev.returncode == 0, ev.stderr[-3000:]
    m = json.loads((tmp_path / "m.json").read_text())
    # --per_frame: the frames after the context, whose mean is the metric and whose bounds average to its bound.
    rows = m["per_frame"]
    assert rows["frame"] == [3, 4]
    assert np.mean(rows["mean"]) == pytest.approx(m["nats_per_frame"], rel=1e-5)
    assert np.mean(rows["lower_bound"]) == pytest.approx(m["lower_bound"], rel=1e-5)
    assert f"frame 4: {rows['mean'][1]:.3f}" in ev.stdout
    # ... each frame's own mean, standard error and bound, recomputed here on the same 12 sequences.
    from datasets import pipelines
    from vpn_tf import distributions

    config, model = training.restore_model(str(tmp_path))
    ds = pipelines.eval_dataset(config, "validation", 12)
    values = training.per_frame_values(config, model, ds)
    np.testing.assert_allclose(rows["mean"], values.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rows["stderr"], values.std(0, ddof=1) / np.sqrt(12), rtol=1e-4)
    video = np.stack([ex["video"] for ex in ds.as_numpy_iterator()])
    bound = distributions.per_frame(distributions.binary_entropy(video[:, 2:])).numpy().mean(0)
    np.testing.assert_allclose(rows["lower_bound"], bound, rtol=1e-5)
    assert abs(rows["lower_bound"][0] - rows["lower_bound"][1]) > 1e-3  # per frame, not the overall bound twice
    against = m["against"]
    assert against["workdir"] == str(other) and m["count"] == 12
    np.testing.assert_allclose(against["difference"], m["nats_per_frame"] - against["nats_per_frame"], rtol=1e-4)
    assert 0 < against["difference_stderr"] < m["nats_per_frame_stderr"]  # pairing removes sequence difficulty
    assert f"{against['difference']:+.4f} nats/frame (paired standard error" in ev.stdout
    same = run_command("evaluate.py", *flags, "--against", tmp_path)  # zero difference, zero error
    assert same.returncode == 0, same.stderr[-3000:]
    assert "+0.0000 nats/frame (paired standard error 0.0000)" in same.stdout
    bad = run_command("evaluate.py", *flags, "--against", trained("16x16", "--height", "16", "--width", "16"))
    assert bad.returncode != 0 and "not comparable on the same sequences (height 8 vs 16; width 8 vs 16)" in bad.stderr


@pytest.mark.parametrize("frame", [(8, 8), (5, 9)], ids=lambda f: f"{f[0]}x{f[1]}")
@pytest.mark.parametrize("preset", ["tiny", "tiny_rgb"])
def test_per_frame_values_are_each_frames_metric(preset, frame):
    cfg = vpn_tf.get_config(preset, num_frames=5, eval_num_frames=5, height=frame[0], width=frame[1])
    model = vpn_tf.build_model(cfg)
    rng = np.random.default_rng(0)
    batch = {"video": rng.integers(0, 256, (3, 5, *cfg.frame_shape)).astype(np.uint8)}
    if cfg.action_dim:
        batch["actions"] = rng.normal(size=(3, 5, cfg.action_dim)).astype(np.float32)
        batch["states"] = rng.normal(size=(3, 5, cfg.state_dim)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(batch)
    values = training.per_frame_values(cfg, model, ds, batch_size=2)
    assert values.shape == (3, 5 - cfg.context_frames)
    np.testing.assert_allclose(values.mean(1), training.per_sequence_values(cfg, model, ds), rtol=1e-6)
    # Frame by frame, by hand: nats in the frame (grey) or nats per dimension within it (RGB).
    lp = model.log_prob(**{k: tf.constant(v) for k, v in batch.items()}).numpy().astype(np.float64)
    by_hand = -lp.sum((2, 3, 4)) if cfg.output == "sigmoid" else -lp.mean((2, 3, 4))
    np.testing.assert_allclose(values, by_hand, rtol=1e-5)


def test_per_sequence_values_and_their_paired_difference():
    cfg = vpn_tf.get_config("tiny")
    model = vpn_tf.build_model(cfg)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (7, cfg.num_frames, *cfg.frame_shape)).astype(np.uint8)
    ds = tf.data.Dataset.from_tensor_slices({"video": video})
    values = training.per_sequence_values(cfg, model, ds, batch_size=3)  # batches of 3, 3 and 1, in order
    assert values.shape == (7,) and values.dtype == np.float64
    one = training.per_sequence_values(cfg, model, ds.skip(4).take(1))
    np.testing.assert_allclose(one, values[4:5], rtol=1e-6)
    metrics = training.evaluate(cfg, model, ds, batch_size=4)
    np.testing.assert_allclose(values.mean(), metrics["nats_per_frame"], rtol=1e-5)
    # Exact values: differences 1, 2, 3 -> mean 2, standard deviation 1, standard error 1 / sqrt(3).
    mean, stderr = training.paired_difference([10.0, 20.0, 30.0], [9.0, 18.0, 27.0])
    assert mean == 2.0 and stderr == pytest.approx(1 / np.sqrt(3))
    assert training.paired_difference(values, values) == (0.0, 0.0)
    with pytest.raises(ValueError, match="paired values need two equal 1-D shapes"):
        training.paired_difference(values, values[:3])
    with pytest.raises(training.TrainingError, match="empty"):
        training.per_sequence_values(cfg, model, ds.take(0))


@pytest.mark.large
def test_samples_in_tensorboard(tmp_path, config_flags):
    flags, metric = config_flags
    out = _train(tmp_path, "--steps", "2", "--eval_every", "1", config=flags)
    assert f"{metric}=" in out.stdout
    assert "samples/truth_then_model" in _event_tags(tmp_path / "eval")
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


@pytest.mark.large  # 20 to 40 s each on one core
@pytest.mark.parametrize("preset, frame", [("tiny", (5, 9)), ("tiny_rgb", (7, 4))], ids=["tiny-5x9", "tiny_rgb-7x4"])
def test_oblong_frames_train_and_show_in_tensorboard(tmp_path, preset, frame):
    """In process, on H x W frames with H != W: two training steps, an evaluation, samples, and TensorBoard's picture
    of truth rows over sample rows (`video_grid`): H-high, W-wide tiles 2 pixels apart, each sequence's samples
    under its future frames."""
    from vpn_tf.visualize import video_grid

    h, w = frame
    config = vpn_tf.get_config(preset, height=h, width=w, steps=2, eval_every=2, checkpoint_every=2)
    rng = np.random.default_rng(0)

    def sequences(n, t):
        data = {"video": rng.integers(0, 256, (n, t, h, w, config.channels)).astype(np.uint8)}
        if config.conditional:
            data["actions"] = rng.normal(size=(n, t, config.action_dim)).astype(np.float32)
            data["states"] = rng.normal(size=(n, t, config.state_dim)).astype(np.float32)
        return data

    train_data = sequences(8, config.num_frames)
    eval_data = sequences(config.eval_sequences, config.eval_num_frames)

    def train_dataset_fn(start):
        def fn(ctx):
            per_replica = ctx.get_per_replica_batch_size(config.batch_size)
            return tf.data.Dataset.from_tensor_slices(train_data).repeat().batch(per_replica, drop_remainder=True)

        return fn

    sampled = []
    sampler = training.continuation_sampler()

    def sample_fn(model, batch):
        frames = np.asarray(sampler(model, batch))
        sampled.append((batch["video"].numpy(), frames))
        return frames

    metrics = training.train_and_evaluate(
        config,
        str(tmp_path),
        train_dataset_fn,
        lambda split, n: tf.data.Dataset.from_tensor_slices(eval_data).take(n),
        strategy=tf.distribute.MirroredStrategy(["/cpu:0"]),
        deterministic=False,
        progress=False,
        sample_fn=sample_fn,
    )
    assert np.isfinite(metrics[training.metric_name(config)])
    assert len(sampled) == 1  # the one evaluation, at the last step
    truth, samples = sampled[0]
    n, t, p = len(truth), config.eval_num_frames, config.eval_num_frames - config.context_frames
    assert truth.shape == (n, t, h, w, config.channels) and samples.shape == (n, p, h, w, config.channels)
    images = [
        tf.make_ndarray(v.tensor)
        for f in os.listdir(tmp_path / "eval")
        for e in tf.compat.v1.train.summary_iterator(str(tmp_path / "eval" / f))
        for v in e.summary.value
        if v.tag == "samples/truth_then_model"
    ]
    (image,) = images
    grid = tf.io.decode_png(image[2], channels=config.channels).numpy()  # [width, height, PNG]: lossless
    assert (int(image[0]), int(image[1])) == ((w + 2) * t - 2, (h + 2) * 2 * n - 2)
    assert grid.shape == ((h + 2) * 2 * n - 2, (w + 2) * t - 2, config.channels)
    for b in range(n):
        for k in range(t):
            y, x = 2 * b * (h + 2), k * (w + 2)
            np.testing.assert_array_equal(grid[y : y + h, x : x + w], truth[b, k])
        for k in range(p):  # right-aligned: the samples under the future frames they continue to
            y, x = (2 * b + 1) * (h + 2), (config.context_frames + k) * (w + 2)
            np.testing.assert_array_equal(grid[y : y + h, x : x + w], samples[b, k])
        np.testing.assert_array_equal(grid[(2 * b + 1) * (h + 2) :][:h, : config.context_frames * (w + 2)], 128)
    np.testing.assert_array_equal(grid, video_grid([v for b in range(n) for v in (truth[b], samples[b])]))


@pytest.mark.large
def test_teacher_forced_pictures_without_the_sampler(tmp_path, config_flags):
    # RGB: the teacher-forced mean frame is a softmax over 6-D logits (oneDNN's softmax takes at most 5 dimensions).
    flags, metric = config_flags
    out = _train(tmp_path, "--steps", "1", "--no_samples", config=flags)
    assert f"{metric}=" in out.stdout
    assert "teacher_forced_predictions/truth_then_model" in _event_tags(tmp_path / "eval")


@pytest.mark.large
def test_wall_clock_budget_stops_evaluates_checkpoints_and_resumes(tmp_path, config_flags):
    # A budget far below one step's time: exactly one step, then the end-of-run evaluation and checkpoint.
    # (--no_samples: the budget's plumbing is checked here, the samples in test_samples_in_tensorboard.)
    flags, metric = config_flags
    common = ("--steps", "50", "--eval_every", "50", "--max_minutes", "1e-6", "--no_samples")
    out = _train(tmp_path, *common, config=flags)
    assert f"{metric}=" in out.stdout
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-1")
    assert "wall_minutes" in _event_tags(tmp_path / "train")
    assert metric in _event_tags(tmp_path / "eval")
    _train(tmp_path, *common, config=flags)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    out = _train(tmp_path / "bad", "--max_minutes", "0", check=False)
    assert out.returncode != 0 and "max_minutes must be positive, got 0" in out.stderr


@pytest.mark.large
def test_kill_and_resume_is_bitwise_identical(tmp_path, config_flags):
    flags, _ = config_flags
    steps = "7"
    common = ("--steps", steps, "--checkpoint_every", "1", "--eval_every", "3")
    _train(tmp_path / "straight", *common, config=flags)
    killed = tmp_path / "killed"
    cmd = script_command("train.py", *flags, "--no_progress", "--workdir", killed, *common)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    kill_after = random.Random(f"kill {flags}").randint(2, 5)  # seeded: a failure names a reproducible kill point
    deadline = time.time() + 240
    target = killed / "checkpoints" / f"ckpt-{kill_after}.index"
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), f"the run ended before it could be killed after step {kill_after}"
    assert not (killed / "checkpoints" / f"ckpt-{steps}.index").exists()
    _train(killed, *common, config=flags)
    a, b = _variables(str(tmp_path / "straight" / "checkpoints")), _variables(str(killed / "checkpoints"))
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k} differs after kill at step {kill_after} and resume")


@pytest.fixture(scope="module")
def data_parallel(tmp_path_factory):
    def compute(directory):
        out = run_script(os.path.join("tests", "helpers", "data_parallel.py"), timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        (directory / "result.json").write_text(out.stdout.strip().splitlines()[-1])

    # Once per session: its tests may run on either pytest-xdist worker.
    directory = once_per_session(tmp_path_factory, "data_parallel", compute)
    return json.loads((directory / "result.json").read_text())


@pytest.mark.large
@pytest.mark.parametrize("update", ["rmsprop", "sgd", "xla", "binarized"])
def test_two_replicas_take_the_one_device_step(data_parallel, update):
    r = data_parallel[update]
    assert r.get("rerun_diff", 0.0) == 0.0 and ("rerun_diff" in r) == (update != "sgd")
    assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-5)
    assert r["norm"][0] == pytest.approx(r["norm"][1], rel=1e-4)
    assert r["max_weight_diff"] <= 1e-5 * max(1.0, r["scale"])
    if update == "sgd":
        # The update is proportional to the gradient: a gradient summed twice, or divided by the replica count
        # once too often, moves the weights twice (or half) as far.
        a, b = r["update_norm"]
        assert a > 0 and b == pytest.approx(a, rel=1e-5)


@pytest.mark.large
def test_remat_on_two_replicas_with_xla_and_bfloat16_takes_the_same_step(data_parallel):
    r = data_parallel["remat_xla_bfloat16"]
    assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-6)
    assert r["norm"][0] == pytest.approx(r["norm"][1], rel=1e-3)
    # The step moved the weights, and remat moved them the same way (RMSprop's first step is ~lr per weight).
    assert r["update"] > 1e-4 and r["max_weight_diff"] <= 1e-3 * r["update"]


@pytest.mark.large
def test_one_gradient_all_reduce_per_step(data_parallel):
    # Every cross-replica reduction in the traced step, by shape: exactly the trainable variables' gradients, once
    # each (metrics stay on the replicas until read).
    assert data_parallel["reduced_shapes"] == data_parallel["variable_shapes"]


@pytest.mark.large
def test_evaluation_across_replicas_is_exact_and_traced_once(data_parallel):
    e = data_parallel["eval"]
    # 5 sequences in global batches of 4 over 2 replicas: the last batch leaves one replica empty.
    assert e["one"]["five"]["count"] == e["two"]["five"]["count"] == 5
    assert e["two"]["five"]["nats_per_frame"] == pytest.approx(e["direct"]["mean"], rel=1e-6)
    assert e["two"]["five"]["nats_per_frame_stderr"] == pytest.approx(e["direct"]["stderr"], rel=1e-3)
    for split in ("five", "three"):
        for k, v in e["one"][split].items():
            assert e["two"][split][k] == pytest.approx(v, rel=1e-6), (split, k)
    # Two evaluations (5 then 3 sequences: other last-batch shapes) and one trace.
    assert e["one"]["traces"] == e["two"]["traces"] == 1


@pytest.mark.large
def test_xla_step_on_two_replicas_through_train_py(tmp_path):
    out = _train(tmp_path, "--steps", "2", "--cpu_devices", "2", "--xla", "--eval_every", "100")
    assert "nats_per_frame=" in out.stdout
    # The end-of-run samples came from a model mirrored over the two devices (no other test samples one).
    assert "samples/truth_then_model" in _event_tags(tmp_path / "eval")


def test_host_reads_metrics_only_every_log_every_steps(tmp_path, monkeypatch):
    from datasets import pipelines
    from vpn_tf import get_config

    reads = []
    real_read = training.StepMetrics.read
    monkeypatch.setattr(training.StepMetrics, "read", lambda self: reads.append(1) or real_read(self))
    config = get_config("tiny", steps=7, eval_every=100, checkpoint_every=100)
    training.train_and_evaluate(
        config,
        str(tmp_path),
        train_dataset_fn=lambda start: pipelines.distributed_train_dataset_fn(config, 0, start),
        strategy=tf.distribute.MirroredStrategy(["/cpu:0"]),
        log_every=3,
        progress=False,
    )
    # One reset at the start, then steps 3 and 6 and the final step 7 (which also checkpoints).
    assert len(reads) == 4


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(workdir, *flags):
    """Two train.py workers of one MultiWorkerMirroredStrategy cluster on loopback (as docs/training.md describes)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        cmd = script_command("train.py", *_TINY, workdir, "--batch_size", "4", *flags)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs, timeout=240):
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]


def _assert_same_variables(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


@pytest.mark.large
def test_multi_worker_mirrored_two_processes_end_identical(tmp_path):
    _finish(_start_workers(tmp_path, "--steps", "2", "--eval_every", "100"))
    assert "samples/truth_then_model" in _event_tags(tmp_path / "eval")  # the chief's end-of-run samples
    chief = _variables(str(tmp_path / "checkpoints"))
    worker = _variables(str(tmp_path / "worker_1" / "checkpoints"))
    assert chief["step/.ATTRIBUTES/VARIABLE_VALUE"] == 2
    # Model weights are stored under the optimizer's path (the checkpoint names each variable by its shortest path).
    weights = [k for k in chief if k.startswith("optimizer/_trainable_variables/")]
    from vpn_tf import build_model, get_config

    assert len(weights) == len(build_model(get_config("tiny")).trainable_variables)
    _assert_same_variables(chief, worker, "chief vs worker 1")


@pytest.mark.large
def test_multi_worker_resumes_after_one_worker_is_killed(tmp_path):
    # --no_samples: the end-of-run samples on a cluster are checked by the test above; this one checks the weights.
    flags = ("--steps", "6", "--checkpoint_every", "1", "--eval_every", "100", "--no_samples")
    _finish(_start_workers(tmp_path / "straight", *flags))
    run = tmp_path / "killed"
    procs = _start_workers(run, *flags)
    # Seeded (it draws step 3, mid-run): a failure names a kill point that a rerun reproduces.
    kill_after = random.Random("multi-worker kill").randint(2, 4)
    target = run / "checkpoints" / f"ckpt-{kill_after}.index"
    deadline = time.time() + 240
    while not target.exists() and procs[0].poll() is None and time.time() < deadline:
        time.sleep(0.02)
    procs[1].send_signal(signal.SIGKILL)  # worker 1 dies...
    procs[1].wait()
    assert target.exists(), f"the run ended before a worker could be killed after step {kill_after}"
    # ...and the chief cannot finish without it: its next all-reduce waits for a peer that is gone. A cluster
    # manager then restarts the job, which is what we do here.
    time.sleep(3)
    assert procs[0].poll() is None or procs[0].returncode != 0
    procs[0].kill()
    procs[0].wait()
    assert not (run / "checkpoints" / "ckpt-6.index").exists()
    _finish(_start_workers(run, *flags))
    straight = _variables(str(tmp_path / "straight" / "checkpoints"))
    killed = f"after worker 1 was killed after step {kill_after} and the cluster resumed"
    _assert_same_variables(straight, _variables(str(run / "checkpoints")), f"chief {killed}")
    _assert_same_variables(straight, _variables(str(run / "worker_1" / "checkpoints")), f"worker 1 {killed}")


def test_plateau_schedule_on_a_scripted_sequence():
    lr = tf.Variable(1.0)
    plateau = training.Plateau(factor=0.3, patience=2)
    values = [10.0, 9.0, 9.5, 9.2, 8.0, 8.0, 8.5, 7.0, 7.5, 7.5, 7.5, 7.5]
    decayed = [plateau.update(v, lr) for v in values]
    # Improvements reset the count; two non-improving evaluations in a row decay the rate, then the count restarts.
    assert decayed == [False, False, False, True, False, False, True, False, False, True, False, True]
    assert float(lr.numpy()) == pytest.approx(0.3**4)
    assert float(plateau.best.numpy()) == 7.0


def test_resume_applies_a_new_learning_rate_and_keeps_a_decayed_one(tmp_path):
    cfg = vpn_tf.get_config("tiny", learning_rate=0.01)
    state = training.create_train_state(cfg)
    assert not state.apply_requested_learning_rate(0.01)  # a new run records its rate
    state.learning_rate.assign(0.003)  # as the plateau decays it
    path = state.checkpoint().save(str(tmp_path / "new" / "ckpt"))
    resumed = training.create_train_state(cfg)
    resumed.restore(path)
    assert not resumed.apply_requested_learning_rate(0.01)  # resumed with its own rate: the decayed rate stays
    assert float(resumed.learning_rate.numpy()) == pytest.approx(0.003)
    resumed.plateau.bad_evals.assign(1)
    assert resumed.apply_requested_learning_rate(0.001)  # a new rate on the command line applies...
    assert float(resumed.learning_rate.numpy()) == pytest.approx(0.001)
    assert int(resumed.plateau.bad_evals.numpy()) == 0  # ...with a fresh patience count
    # A checkpoint written before the rate was recorded restores (the check that every object was restored passes
    # without the record) and compares the request with the rate it holds.
    old = training.create_train_state(cfg)
    old.learning_rate.assign(0.003)
    path = old.checkpoint(requested_learning_rate=False).save(str(tmp_path / "old" / "ckpt"))
    assert not tf.train.load_checkpoint(path).has_tensor(training.state.REQUESTED_LR_KEY)
    for requested, applied in ((0.003, False), (0.01, True)):
        again = training.create_train_state(cfg)
        again.restore(path)
        assert np.isnan(again.requested_learning_rate.numpy())
        assert again.apply_requested_learning_rate(requested) == applied
        assert float(again.learning_rate.numpy()) == pytest.approx(requested)
    # Negative control: checking every object against the old checkpoint with the record included fails.
    with pytest.raises(AssertionError, match="requested_learning_rate"):
        training.create_train_state(cfg).checkpoint().restore(path).assert_existing_objects_matched()


@pytest.mark.large
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = _train(tmp_path, "--steps", "6", "--checkpoint_every", "1", "--learning_rate", "1e30", check=False)
    assert out.returncode != 0
    assert "Non-finite loss" in out.stderr and "Last good checkpoint" in out.stderr
    ckpts = sorted(f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".index"))
    assert ckpts, "no good checkpoint kept"
    last = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    reader = tf.train.load_checkpoint(last)
    for k in reader.get_variable_to_shape_map():
        if k.startswith("optimizer/_trainable_variables/"):
            assert np.all(np.isfinite(reader.get_tensor(k))), f"{k} in {last} is not finite"


@pytest.mark.large
def test_bad_command_lines(tmp_path):
    out = _train(tmp_path, "--config", "moving_mnist_pape", check=False)
    assert out.returncode != 0 and "Did you mean 'moving_mnist_paper'" in out.stderr and "tiny" in out.stderr
    out = _train(tmp_path, "--stepz", "3", check=False)
    assert out.returncode != 0 and "--stepz" in out.stderr and "Did you mean --steps" in out.stderr
    assert "Valid flags:" in out.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = _train(blocker / "run", "--steps", "1", check=False)
    assert out.returncode != 0 and "is not writable" in out.stderr
    assert not (blocker.parent / "run").exists()


@pytest.mark.large
def test_checkpoint_from_another_config_names_the_fields(tmp_path):
    _train(tmp_path, "--steps", "1", "--no_samples")
    out = _train(tmp_path, "--steps", "2", "--hidden", "6", "--lstm_channels", "4", "--no_samples", check=False)
    assert out.returncode != 0
    assert "another config" in out.stderr and "hidden: checkpoint 4 vs requested 6" in out.stderr
    assert "lstm_channels" in out.stderr
    # Changing a training-only field resumes fine, and a new learning rate applies.
    out = _train(tmp_path, "--steps", "2", "--learning_rate", "1e-4", "--no_samples")
    assert "learning_rate set to 0.0001" in out.stderr
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")))
    assert reader.get_tensor("optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(1e-4)
    assert reader.get_tensor(training.state.REQUESTED_LR_KEY) == pytest.approx(1e-4)


def test_resume_refuses_to_switch_the_validation_reading(tmp_path):
    from vpn_tf import get_config

    grey = get_config("tiny")
    training.write_config(str(tmp_path), grey)
    tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(tmp_path / "checkpoints" / "ckpt"))
    training.check_compatible(str(tmp_path), grey.replace(learning_rate=1e-4))
    with pytest.raises(training.TrainingError, match="validates on grey frames.*binarize_inputs=True would switch"):
        training.check_compatible(str(tmp_path), grey.replace(binarize_inputs=True))
    training.write_config(str(tmp_path), grey.replace(binarize_inputs=True))
    with pytest.raises(training.TrainingError, match="validates on binary frames.*binarize_inputs=False would switch"):
        training.check_compatible(str(tmp_path), grey)


@pytest.mark.parametrize("mixed_precision, jit", [("bfloat16", False), ("float16", False), ("float32", True)])
def test_mixed_precision_and_xla_steps(mixed_precision, jit):
    from datasets import pipelines
    from vpn_tf import get_config

    config = get_config("tiny", batch_size=2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        state = training.create_train_state(config, mixed_precision)
    ds = strategy.distribute_datasets_from_function(pipelines.distributed_train_dataset_fn(config, 0, 0))
    step = training.make_train_step(config, state, strategy, jit=jit)
    before = [v.numpy().copy() for v in state.model.trainable_variables]
    it = iter(ds)
    losses = []
    for _ in range(2):
        step(next(it))
        losses.append(state.metrics.read()["loss"])
    assert all(np.isfinite(losses))
    assert state.model.encoder.compute_dtype == ("float32" if mixed_precision == "float32" else mixed_precision)
    assert all(v.dtype == "float32" for v in state.model.trainable_variables)
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, state.model.trainable_variables, strict=True)]
    assert all(changed)
    assert int(state.step.numpy()) == 2 and int(state.data_position.numpy()) == 4


def test_binarized_inputs_step_reads_binary_frames_and_scores_the_grey_levels():
    from vpn_tf import distributions as D
    from vpn_tf import get_config

    config = get_config("tiny", batch_size=2, binarize_inputs=True)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (2, config.num_frames, config.height, config.width, 1), dtype=np.uint8)
    binary = D.binarize(video, [1, 2])
    batch = {"video": tf.constant(video), "binary_video": binary}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        state = training.create_train_state(config)
    model = state.model
    # What the step should compute, from the weights before it: the network reads the binary frames and is scored
    # against the grey levels. The other two readings differ, so the comparison can tell them apart.
    grey_targets = video[:, config.context_frames :]
    expected = {
        "binary inputs, grey targets": D.log_prob(model.conditional_logits(binary), grey_targets, "sigmoid"),
        "grey inputs": model.log_prob(tf.constant(video)),
        "binary targets": D.log_prob(model.conditional_logits(binary), binary[:, config.context_frames :], "sigmoid"),
    }
    expected = {k: float(np.sum(training.per_example_loss(config, v))) / 2 for k, v in expected.items()}
    np.testing.assert_allclose(
        training.batch_log_prob(config, model, batch).numpy(),
        D.log_prob(model.conditional_logits(binary), grey_targets, "sigmoid").numpy(),
    )
    step = training.make_train_step(config, state, strategy)
    step(batch)
    assert state.metrics.read()["loss"] == pytest.approx(expected["binary inputs, grey targets"], rel=1e-5)
    values = list(expected.values())
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1 :]) > 1e-4
    # A binarize_inputs step refuses batches without the binary frames instead of silently reading grey ones.
    with pytest.raises(ValueError, match="binary_video"):
        step({"video": tf.constant(video)})


@pytest.mark.large
def test_sample_py_writes_gifs_and_grid(tmp_path, trained):
    run = trained("tiny")
    common = ("--workdir", run, "--split", "validation", "--num_sequences", "2", "--num_samples", "2")
    out = run_script("sample.py", *common, "--out", tmp_path / "samples")
    assert out.returncode == 0, out.stderr[-2000:]
    from PIL import Image

    gif = Image.open(tmp_path / "samples" / "sequence_0.gif")
    assert gif.n_frames == 4  # tiny: 2 context + 2 generated frames
    grid = Image.open(tmp_path / "samples" / "grid.png")
    # 2 sequences x (truth + 2 samples) rows of 4 frames, 8 px frames, 2 px gaps, upscaled x2, under a header row of
    # 2 x 8 px (text of at least 8 px, vpn_tf.visualize.labelled_grid) and right of a margin of row labels.
    assert grid.size[1] == 16 + 2 * (6 * 10 - 2) and grid.size[0] > 2 * (4 * 10 - 2)
    # The same through an export of the run: sample.py --saved_model calls the `sample` signature.
    run_script("export.py", "--workdir", str(run), "--export_dir", str(tmp_path / "export" / "1"), check=True)
    out = run_command(
        "sample.py", *common, "--saved_model", tmp_path / "export" / "1", "--out", tmp_path / "samples_export"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # Same checkpoint, same seeds: the exported sampler draws the same videos as the in-process one.
    for name in ("grid.png", "sequence_1.gif"):
        a = (tmp_path / "samples" / name).read_bytes()
        assert a == (tmp_path / "samples_export" / name).read_bytes()


@pytest.mark.large
def test_sample_py_compares_models_on_the_same_contexts(tmp_path, trained):
    vpn, base = trained("tiny"), trained("baseline", "--model", "baseline")
    common = ("--split", "validation", "--num_sequences", "2", "--num_samples", "2", "--scale", "1", "--out")
    # sample.py's main in this process (its start-up is checked by the test above).
    one = run_command("sample.py", "--workdir", vpn, *common, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    out = run_command("sample.py", "--workdir", vpn, "--workdir", base, *common, tmp_path / "two")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 from" in out.stdout and str(base) in out.stdout
    from PIL import Image

    # The frames of the labelled grids: below their 16 px header, the rightmost 4 frames' columns (the label
    # margins differ with the labels' lengths).
    width = 4 * 10 - 2
    one = np.asarray(Image.open(tmp_path / "one" / "grid.png"))[16:, -width:]
    two = np.asarray(Image.open(tmp_path / "two" / "grid.png"))[16:, -width:]
    row = 10  # 8 px frames + 2 px gap
    assert two.shape[0] == 2 * 5 * row - 2  # per sequence: truth, 2 VPN samples, 2 baseline samples
    # Sequence 0's truth and VPN rows are those of the single-model grid (same contexts, same seeds)...
    np.testing.assert_array_equal(two[: 3 * row], one[: 3 * row])
    # ...and sequence 1 starts after the baseline's rows.
    np.testing.assert_array_equal(two[5 * row : 8 * row - 2], one[3 * row : 6 * row - 2])
    big = trained("16x16", "--height", "16", "--width", "16")
    out = run_command("sample.py", "--workdir", vpn, "--workdir", big, *common, tmp_path / "x")
    assert out.returncode != 0 and "models other data than" in out.stderr and "'height': (8, 16)" in out.stderr


@pytest.mark.large
def test_restore_model_loads_every_trained_weight(trained):
    # Regression: a Checkpoint(model=...) alone left the list-held residual blocks at their initial values.
    run = trained("tiny")
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "checkpoints")))
    import keras

    for seed in (1, 2):
        keras.utils.set_random_seed(seed)  # different initial values each time
        config, model = training.restore_model(str(run))
        assert config.name == "tiny"
        for i, v in enumerate(model.trainable_variables):
            stored = reader.get_tensor(f"optimizer/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
            np.testing.assert_array_equal(v.numpy(), stored, err_msg=v.path)
    block_kernel = model.encoder.blocks[1].mu2.gates.kernel
    assert block_kernel.path == "vpn/encoder/block_1/mu2/gates/kernel"


def test_evaluation_reports_nats_per_dim_per_colour_for_rgb():
    """RGB softmax configs also get each colour's nats/dim and standard error; they average to the metric."""
    config = vpn_tf.get_config("tiny_rgb")
    model = vpn_tf.build_model(config)
    rng = np.random.default_rng(3)
    n, t = 5, config.eval_num_frames
    data = {
        "video": rng.integers(0, 256, (n, t, *config.frame_shape)).astype(np.uint8),
        "actions": rng.normal(size=(n, t, 5)).astype(np.float32),
        "states": rng.normal(size=(n, t, 5)).astype(np.float32),
    }
    metrics = training.evaluate(config, model, tf.data.Dataset.from_tensor_slices(data), batch_size=2)
    per_seq = -model.log_prob(**{k: tf.constant(v) for k, v in data.items()}).numpy().mean(axis=(1, 2, 3))  # [n, 3]
    np.testing.assert_allclose(metrics["nats_per_dim_channel"], per_seq.mean(0), rtol=1e-5)
    # The evaluator's variance comes from sums of squares (one pass, across replicas): with a spread this small
    # against the mean (~5e-4 vs ~5.5 nats/dim at initialisation) float32 log-probs leave it ~0.1% off.
    stderr = per_seq.std(0, ddof=1) / np.sqrt(n)
    np.testing.assert_allclose(metrics["nats_per_dim_channel_stderr"], stderr, rtol=2e-2)
    assert np.mean(metrics["nats_per_dim_channel"]) == pytest.approx(metrics["nats_per_dim"], rel=1e-5)
    assert "nats_per_frame_channel" not in training.evaluate(
        vpn_tf.get_config("tiny"),
        vpn_tf.build_model(vpn_tf.get_config("tiny")),
        tf.data.Dataset.from_tensor_slices({"video": data["video"][..., :1]}),
        batch_size=2,
    )


def test_evaluation_of_the_binary_reading_scores_binary_inputs_against_grey_levels():
    """`eval_dataset(..., binary_seed)` through the Evaluator (what `evaluate.py --binarize_inputs` runs) equals
    scoring the drawn frames by hand, and differs from the grey reading."""
    from datasets import pipelines
    from vpn_tf import distributions as D

    config = vpn_tf.get_config("tiny")
    model = vpn_tf.build_model(config)
    ds = pipelines.eval_dataset(config, "validation", 4, binary_seed=3)
    batch = next(iter(ds.batch(4)))
    grey = training.evaluate(config, model, pipelines.eval_dataset(config, "validation", 4), batch_size=2)
    binary = training.evaluate(config, model, ds, batch_size=2)
    logits = model.conditional_logits(batch["binary_video"])
    by_hand = D.log_prob(logits, batch["video"][:, config.context_frames :], "sigmoid")
    assert binary["nats_per_frame"] == pytest.approx(float(training.per_example_nats(config, by_hand).numpy().mean()))
    assert binary["nats_per_frame"] != pytest.approx(grey["nats_per_frame"], rel=1e-4)
    np.testing.assert_allclose(
        training.per_sequence_values(config, model, ds, 2), training.per_example_nats(config, by_hand), rtol=1e-5
    )
