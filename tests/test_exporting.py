import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import vpn_tf
from tests.scripts import ENV, ROOT, run_script
from vpn_tf import exporting
from vpn_tf.sampling import Sampler

pytestmark = pytest.mark.large  # fresh processes, shipped checkpoints or benchmarks: `pytest -m large`


# Every export test runs on the preset's square frames and on oblong ones (height 7, width 4): the signatures take
# [B, T, H, W, C] with H and W from the config.
@pytest.fixture(scope="module", params=[(8, 8), (7, 4)], ids=lambda f: f"{f[0]}x{f[1]}")
def exported(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    cfg = vpn_tf.get_config("tiny_rgb", height=request.param[0], width=request.param[1])
    model = vpn_tf.build_model(cfg)
    path = exporting.export(model, str(base / "vpn" / "1"))
    return cfg, model, path


def _inputs(cfg, seed=0, batch=2, n_ctx=2, num_frames=2):
    rng = np.random.default_rng(seed)
    t = n_ctx + num_frames
    return {
        "sample/context": rng.integers(0, 256, (batch, n_ctx, *cfg.frame_shape)).astype(np.uint8),
        "sample/seed": np.array([4, 2], np.int32),
        "sample/num_frames": np.array(num_frames, np.int32),
        "sample/actions": rng.normal(size=(batch, t, 5)).astype("float32"),
        "sample/states": rng.normal(size=(batch, n_ctx, 5)).astype("float32"),
        "log_prob/video": rng.integers(0, 256, (batch, 4, *cfg.frame_shape)).astype(np.uint8),
        "log_prob/actions": rng.normal(size=(batch, 4, 5)).astype("float32"),
        "log_prob/states": rng.normal(size=(batch, 2, 5)).astype("float32"),
    }


# CI reruns these with oneDNN off: oneDNN's graph rewrites have broken exported sampler graphs before.
@pytest.mark.sampler_graph
def test_fresh_process_calls_both_signatures_and_matches_in_process(exported, tmp_path):
    cfg, model, path = exported
    inputs = _inputs(cfg)
    np.savez(tmp_path / "in.npz", **inputs)
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tests", "helpers", "call_export.py"),
            path,
            tmp_path / "in.npz",
            tmp_path / "out.npz",
        ],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = np.load(tmp_path / "out.npz")
    ref = Sampler(model).sample(
        inputs["sample/context"], 2, seed=(4, 2), actions=inputs["sample/actions"], states=inputs["sample/states"]
    )
    np.testing.assert_array_equal(out["frames"], ref)
    np.testing.assert_array_equal(out["default_frames"], ref)
    lp = model.log_prob(inputs["log_prob/video"], inputs["log_prob/actions"], inputs["log_prob/states"]).numpy()
    np.testing.assert_allclose(out["nats_per_frame"], -lp.sum(axis=(2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(out["total_nats"], -lp.sum(axis=(1, 2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(out["nats_per_dim"], -lp.mean(axis=(1, 2, 3, 4)), rtol=1e-5)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    cfg, _, path = exported
    show = subprocess.run(
        ["saved_model_cli", "show", "--dir", path, "--all"],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
        timeout=300,
    ).stdout
    for name in ("signature_def['sample']", "signature_def['log_prob']", "signature_def['serving_default']"):
        assert name in show
    assert show.count("tensorflow/serving/predict") >= 3
    inputs = _inputs(cfg)
    for k in ("video", "actions", "states"):
        np.save(tmp_path / f"{k}.npy", inputs[f"log_prob/{k}"])
    run = subprocess.run(
        [
            "saved_model_cli",
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "log_prob",
            "--inputs",
            ";".join(f"{k}={tmp_path / k}.npy" for k in ("video", "actions", "states")),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Result for output key total_nats" in run.stdout


def test_concurrent_sample_calls_equal_sequential_calls(exported):
    cfg, _, path = exported
    fn = tf.saved_model.load(path).signatures["sample"]
    inputs = _inputs(cfg, batch=1)
    kw = {k[len("sample/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("sample/")}

    def call(seed):
        return fn(**{**kw, "seed": tf.constant([seed, 7], tf.int32)})["frames"].numpy()

    sequential = [call(s) for s in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        concurrent_ = list(pool.map(call, range(8)))
    for a, b in zip(sequential, concurrent_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(sequential[0], sequential[1])


def test_bad_inputs_raise_clear_errors(exported):
    cfg, _, path = exported
    loaded = tf.saved_model.load(path)
    inputs = _inputs(cfg)
    kw = {k[len("sample/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("sample/")}
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_frames must be >= 1"):
        loaded.signatures["sample"](**{**kw, "num_frames": tf.constant(0)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="actions must be .* covering every frame"):
        loaded.signatures["sample"](**{**kw, "num_frames": tf.constant(5)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="context must be uint8 \\[batch, time >= 1"):
        loaded.signatures["sample"](**{**kw, "context": kw["context"][:, :0]})
    bad = kw["actions"].numpy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="actions must be finite"):
        loaded.signatures["sample"](**{**kw, "actions": tf.constant(bad)})
    lp_kw = {k[len("log_prob/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("log_prob/")}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"video must be uint8 \[batch, time > 2"):
        loaded.signatures["log_prob"](**{**lp_kw, "video": lp_kw["video"][:, :2]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch size"):
        loaded.signatures["log_prob"](**{**lp_kw, "actions": lp_kw["actions"][:1]})
    # A wrong dtype never reaches the graph: the signature rejects it, naming the expected spec. A loaded signature
    # does not hold callers to its static frame shape: the graph's own check names the expected one.
    errors = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(errors, match="expected to be a uint8 tensor but is a float"):
        loaded.signatures["log_prob"](**{**lp_kw, "video": tf.cast(lp_kw["video"], tf.float32)})
    with pytest.raises(errors, match=f"{cfg.height}, {cfg.width}, 3|shape"):
        loaded.signatures["log_prob"](**{**lp_kw, "video": lp_kw["video"][:, :, :4]})


def test_signatures_refuse_a_transposed_frame(exported):
    """[B, T, W, H, C] (rows and columns swapped) is not a frame of an H x W model, even with H * W pixels."""
    cfg, _, path = exported
    if cfg.height == cfg.width:
        pytest.skip("a square frame is its own transpose")
    loaded = tf.saved_model.load(path)
    inputs = _inputs(cfg)
    kw = {k[len("sample/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("sample/")}
    lp_kw = {k[len("log_prob/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("log_prob/")}
    h, w = cfg.height, cfg.width
    expected = rf"must be uint8 \[batch, time, {h}, {w}, 3\]: frames {h} high and {w} wide"
    with pytest.raises(tf.errors.InvalidArgumentError, match="context " + expected):
        loaded.signatures["sample"](**{**kw, "context": tf.transpose(kw["context"], [0, 1, 3, 2, 4])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="video " + expected):
        loaded.signatures["log_prob"](**{**lp_kw, "video": tf.transpose(lp_kw["video"], [0, 1, 3, 2, 4])})


def test_export_cli_unconditional(tmp_path):
    out = run_script("export.py", "--untrained", "--config", "tiny", "--export_dir", str(tmp_path / "mm" / "1"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "inputs['context']" in out.stdout and "inputs['actions']" not in out.stdout
    fn = tf.saved_model.load(str(tmp_path / "mm" / "1")).signatures["sample"]
    frame = vpn_tf.get_config("tiny").frame_shape
    frames = fn(context=tf.zeros([1, 2, *frame], tf.uint8), seed=tf.constant([1, 2]), num_frames=tf.constant(3))
    assert frames["frames"].shape == (1, 3, *frame)
    again = run_script("export.py", "--untrained", "--config", "tiny", "--export_dir", str(tmp_path / "mm" / "1"))
    assert again.returncode != 0 and "already holds a SavedModel" in again.stderr
    bad = run_script("export.py", "--untrained", "--config", "tiny", "--export_dir", str(tmp_path / "mm" / "latest"))
    assert bad.returncode != 0 and "numeric version" in bad.stderr


def test_export_for_a_gpu_server_runs_one_row_group_and_warns_about_more(tmp_path):
    base = ("export.py", "--untrained", "--config", "tiny", "--serving_device", "gpu", "--export_dir")
    out = run_script(*base, tmp_path / "gpu" / "1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "runs 1 row group(s)" in out.stdout and "warning" not in out.stderr
    assert json.load(open(tmp_path / "gpu" / "1" / "assets.extra" / "vpn_tf_export.json"))["groups"] == 1
    out = run_script(*base, tmp_path / "gpu" / "2", "--groups", "4", "--xla")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "runs 4 row group(s)" in out.stdout
    assert "warning: --groups 4 with --serving_device gpu" in out.stderr and "tensorflow/serving#2214" in out.stderr


def _xla_marked_functions(path):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    library = sm.meta_graphs[0].graph_def.library
    return [f.signature.name for f in library.function if f.attr["_XlaMustCompile"].b]


def test_default_export_holds_no_xla_cluster(exported):
    # TF Serving on CPU refuses XLA-marked functions unless started with --xla_cpu_compilation_enabled=true.
    _, _, path = exported
    assert _xla_marked_functions(path) == []


# CI reruns these with oneDNN off: oneDNN's graph rewrites have broken exported sampler graphs before.
@pytest.mark.sampler_graph
def test_xla_export_keeps_the_compiled_pixel_loop_and_samples_the_same_videos(exported, tmp_path):
    """`--xla` exports used to lose the compilation (the signature traced the frame's plain Python function)."""
    cfg, model, _ = exported
    path = exporting.export(model, str(tmp_path / "xla" / "1"), xla=True, groups=2)
    marked = _xla_marked_functions(path)
    assert any("generate_frame" in name for name in marked), marked
    inputs = _inputs(cfg, batch=3)
    np.savez(tmp_path / "in.npz", **inputs)
    helper = os.path.join(ROOT, "tests", "helpers", "call_export.py")
    # A fresh process, as a server would load it; the loaded function still carries the mark.
    cmd = [sys.executable, helper, path, tmp_path / "in.npz", tmp_path / "out.npz", "--report_xla"]
    done = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True, timeout=300)
    assert "xla_marked_functions_loaded=" in done.stdout
    assert int(done.stdout.split("xla_marked_functions_loaded=")[1].split()[0]) >= 1
    ref = Sampler(model, groups=1).sample(
        inputs["sample/context"], 2, seed=(4, 2), actions=inputs["sample/actions"], states=inputs["sample/states"]
    )
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["frames"], ref)


# CI reruns these with oneDNN off: oneDNN's graph rewrites have broken exported sampler graphs before.
@pytest.mark.sampler_graph
def test_exported_sample_runs_row_groups_for_any_batch(exported, tmp_path):
    """An export with 3 row groups: batches smaller than the group count leave groups empty, larger ones split
    unevenly; every batch draws the videos of the one-group in-process sampler. (One export serves every batch:
    the signature takes any batch size.)"""
    cfg, model, _ = exported
    path = str(tmp_path / "groups" / "1")
    exporting.export(model, path, groups=3)
    fn = tf.saved_model.load(path).signatures["sample"]
    for batch in (1, 2, 5):
        inputs = _inputs(cfg, seed=batch, batch=batch)
        kw = {k[len("sample/") :]: tf.constant(v) for k, v in inputs.items() if k.startswith("sample/")}
        ref = Sampler(model, groups=1).sample(
            inputs["sample/context"], 2, seed=(4, 2), actions=inputs["sample/actions"], states=inputs["sample/states"]
        )
        np.testing.assert_array_equal(fn(**kw)["frames"].numpy(), ref, err_msg=f"batch {batch}")
