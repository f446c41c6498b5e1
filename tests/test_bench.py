"""The benchmark scripts run (a smoke run on the tiny preset) and compute their ratios from what they timed.

No timing is asserted: the machines are shared and noisy.
"""

import json

import pytest

from bench.common import interleaved
from bench.train_step import run
from vpn_tf import get_config
from vpn_tf.cost import forward_macs_per_frame, training_flops_per_sequence

# Marked one by one: the tests that start fresh processes, use shipped checkpoints or run benchmarks are large
# (`pytest -m large`); the report tests at the end fake every benchmark and run by default.
large = pytest.mark.large


@large
def test_interleaved_alternates_the_functions_and_keeps_each_ones_fastest_round():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    best = interleaved(fns, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(best) == {"a", "b"} and all(0 <= v < float("inf") for v in best.values())


@large
def test_train_step_benchmark_reports_consistent_ratios_on_the_tiny_preset():
    # big enough that the rounded GFLOP/s figures keep two digits
    overrides = {"hidden": 16, "height": 16, "width": 16}
    record = run("tiny", batch=2, frames=3, repeats=1, overrides=overrides)
    config = get_config("tiny", batch_size=2, num_frames=3, **overrides)
    flops = training_flops_per_sequence(config, 3) * 2
    # 2 encoded frames and 1 decoded frame per sequence, x3 for the backward pass, x2 FLOPs per multiply-add
    macs = forward_macs_per_frame(config)
    assert flops == 2 * 3 * 2 * (2 * (macs["encoder"] + macs["conv_lstm"]) + macs["decoder"])
    assert record["tflop_per_step"] == round(flops / 1e12, 4)
    assert abs(record["achieved_gflops"] * record["seconds_per_step"] - flops / 1e9) <= 0.05 * flops / 1e9
    assert (
        record["micro_benchmark_shape"]
        == f"[4, {config.height}, {config.width}, {config.hidden}] -> {4 * config.hidden}"
    )
    assert record["achieved_gflops"] > 0
    ratio = record["achieved_gflops"] / record["conv3x3_c_to_4c_microbenchmark_gflops"]
    assert abs(record["utilisation"] - ratio) <= 0.02 * ratio + 0.001
    assert record["memory_source"] == "host_vmhwm" and record["peak_memory_mb"] > 0


@large
def test_accelerator_memory_table_from_paper_records():
    from bench.memory import gpu_table

    common = {"bench": "memory_paper/moving_mnist_paper", "precision": "float32", "seconds_per_step_15_frames": 3.0}
    plain = {**common, "remat": False, "fixed_mb": 1024, "per_sequence_20_frames_mb": 10 * 1024}
    plain["predicted_peak_mb_20_frames"] = 11 * 1024
    remat = {**common, "remat": True, "fixed_mb": 999, "measured_peak_mb_20_frames": 1024 + 3 * 1024}
    pushing = {**plain, "bench": "memory_paper/robot_pushing_paper", "fixed_mb": 2048}
    rows = gpu_table([plain, remat, pushing, {"bench": "memory/other"}]).splitlines()
    assert len(rows) == 5
    # (40 GB - 1 GB fixed) // 10 GB = 3 and 7 sequences; with remat the fixed part is the no-remat one's, 3 GB each.
    assert "| moving_mnist_paper | float32 | no | 11,264 (model) | 10,240 | 1,024 | 3 | 7 | 3.0 |" == rows[2]
    assert "| moving_mnist_paper | float32 | yes | 4,096 (measured) | 3,072 | 1,024 | 13 | 26 | 3.0 |" == rows[3]
    # Each preset's rows use its own fixed part: (40 - 2) // 10 = 3, (80 - 2) // 10 = 7.
    assert "| robot_pushing_paper | float32 | no | 11,264 (model) | 10,240 | 2,048 | 3 | 7 | 3.0 |" == rows[4]


@large
def test_memory_full_measures_the_quick_points_and_then_the_rest(monkeypatch):
    from bench import memory

    measured = []

    def fake_measure(name, batch, frames, context_frames=None, precision="float32", remat=False):
        measured.append((name, batch, frames, context_frames))
        return {"peak_rss_mb": 100.0 + len(measured), "memory_source": "host_vmhwm", "device": "/cpu:0", "seconds": 1}

    monkeypatch.setattr(memory, "measure", fake_measure)
    monkeypatch.setattr(memory, "emit", lambda record: record)
    records = memory.main(["--full"])
    assert measured == memory.FULL and measured[: len(memory.QUICK)] == memory.QUICK
    assert [(r["bench"], r["batch"], r["frames"], r["context_frames"]) for r in records] == [
        (f"memory/{name}", batch, frames, ctx) for name, batch, frames, ctx in memory.FULL
    ]
    assert [r["peak_rss_mb"] for r in records] == [101 + k for k in range(len(memory.FULL))]
    measured.clear()
    memory.main([])
    assert measured == memory.QUICK


def test_serving_table_on_hand_written_times():
    """Exact cells on a small case: seconds per call, per added frame ((t(3 frames) - t(1 frame)) / 2) and the ratio
    to the in-process XLA sampler's per-frame time; ways without records get no row."""
    from bench.sampling import WAYS, serving_table

    seconds = {("in_process_xla", 1): (0.5, 1.5), ("in_process_xla", 2): (1.0, 3.0), ("export_xla", 1): (0.6, 3.6)}
    seconds[("export_xla", 2)] = (1.0, 9.0)
    records = [
        {"way": w, "batch": b, "frames": f, "seconds": t}
        for (w, b), times in seconds.items()
        for f, t in zip((1, 3), times, strict=True)
    ]
    lines = serving_table(records, [1, 2], [1, 3]).splitlines()
    assert len(lines) == 4  # header, rule, two ways
    assert lines[2] == f"| {WAYS['in_process_xla']} | 0.500 | 1.500 | 1.000 | 3.000 | 0.500 | 1.000 | 1.0x | 1.0x |"
    assert lines[3] == f"| {WAYS['export_xla']} | 0.600 | 3.600 | 1.000 | 9.000 | 1.500 | 4.000 | 3.0x | 4.0x |"
    # Negative control: a slower export shows in its ratio.
    slower = [
        dict(r, seconds=11.0) if (r["way"], r["batch"], r["frames"]) == ("export_xla", 2, 3) else r for r in records
    ]
    assert serving_table(slower, [1, 2], [1, 3]).splitlines()[3].endswith("| 3.0x | 5.0x |")


@large
def test_serving_latency_table_times_every_way_in_fresh_processes(tmp_path, trained):
    """`bench.sampling --serving` on a tiny trained workdir: every way x batch x frames timed, and the table's
    per-frame figures and ratios are computed from those times."""
    from bench.sampling import WAYS, main, serving_table

    workdir = trained("tiny")
    table_path = tmp_path / "table.md"
    argv = ["--serving", "--workdir", str(workdir), "--batches", "1", "3", "--frames", "1", "3", "--repeats", "1"]
    records = main(argv + ["--groups", "2", "--table", str(table_path), "--records", str(tmp_path / "r.jsonl")])
    ways = [w for w in WAYS if w != "export_compared"]  # that one only with --compare_export
    cells = {(r["way"], r["batch"], r["frames"]) for r in records}
    assert cells == {(w, b, f) for w in ways for b in (1, 3) for f in (1, 3)}
    assert all(r["seconds"] > 0 and r["first_call_seconds"] > 0 for r in records)
    table = table_path.read_text().splitlines()
    assert len(table) == 2 + len(ways)
    by = {(r["way"], r["batch"], r["frames"]): r["seconds"] for r in records}
    row = table[2 + list(WAYS).index("export_xla")].split(" | ")
    per_frame = (by["export_xla", 3, 3] - by["export_xla", 3, 1]) / 2
    reference = (by["in_process_xla", 3, 3] - by["in_process_xla", 3, 1]) / 2
    assert row[5] == f"{(by['export_xla', 1, 3] - by['export_xla', 1, 1]) / 2:.3f}"
    assert row[6] == f"{per_frame:.3f}"
    assert row[8].rstrip(" |") == f"{per_frame / reference:.1f}x"
    assert serving_table(records, [1, 3], [1, 3]) == "\n".join(table)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records


@large
def test_context_ablation_zeroes_only_the_decoders_context():
    """With the context zeroed, a model's likelihood no longer depends on the past frames at all (the baseline's on
    nothing), while without it it does; the decoder's own method is back afterwards."""
    import numpy as np

    import vpn_tf
    from bench.context_ablation import zero_context

    for model_kind in ("vpn", "baseline"):
        config = vpn_tf.get_config("tiny", model=model_kind)
        model = vpn_tf.build_model(config)
        rng = np.random.default_rng(0)
        video = rng.integers(0, 256, (2, config.num_frames, *config.frame_shape)).astype(np.uint8)
        other_past = video.copy()
        other_past[:, : config.context_frames] = rng.integers(0, 256, other_past[:, : config.context_frames].shape)
        full = model.log_prob(video).numpy()
        assert not np.allclose(full, model.log_prob(other_past).numpy())  # the context matters
        with zero_context(model):
            ablated = model.log_prob(video).numpy()
            # Nothing of the past reaches the decoder: other context frames, the same value for every dimension.
            np.testing.assert_allclose(model.log_prob(other_past).numpy(), ablated, rtol=0, atol=1e-6)
        # And the value is the decoder's with an all-zero context (not some other constant).
        n = config.context_frames
        zeros = np.zeros([2, config.height, config.width, config.context_channels], np.float32)
        x = video[:, n].astype(np.float32) / 127.5 - 1
        logits = model.decoder(x, zeros) if model_kind == "vpn" else model.decoder(zeros)
        expected = vpn_tf.distributions.log_prob(logits[:, None], video[:, n : n + 1], config.output).numpy()
        np.testing.assert_allclose(ablated[:, :1], expected, atol=1e-5)
        assert not np.allclose(full, ablated)
        np.testing.assert_array_equal(model.log_prob(video).numpy(), full)


@large
def test_action_rotation_and_the_motion_split():
    """Rotated actions belong to the next sequence (the last gets the first's), nothing else changes; the motion
    mask marks exactly the dimensions whose pixel changed; `score` splits the model's nats over them."""
    import numpy as np

    import vpn_tf
    from bench.context_ablation import moving_mask, rotate_actions, score

    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, (3, 4, 8, 8, 3)).astype(np.uint8)
    actions = rng.normal(size=(3, 4, 5)).astype(np.float32)
    batches = [{"video": videos[:2], "actions": actions[:2]}, {"video": videos[2:], "actions": actions[2:]}]
    rotated = rotate_actions(batches)
    np.testing.assert_array_equal(np.concatenate([b["actions"] for b in rotated]), actions[[1, 2, 0]])
    np.testing.assert_array_equal(np.concatenate([b["video"] for b in rotated]), videos)
    with pytest.raises(ValueError, match="at least 2 sequences"):
        rotate_actions([{"video": videos[:1], "actions": actions[:1]}])

    video = np.zeros((1, 3, 2, 2, 3), np.uint8)
    video[0, 1, 0, 0, 2] = 9  # changes by 9 in blue: moving in every colour of that pixel
    video[0, 2, 1, 1, 0] = 8  # by 8 only: not more than the threshold
    mask = moving_mask(video, 1, 8)
    assert mask.shape == (1, 2, 2, 2, 3)
    assert mask[0, 0, 0, 0].all() and mask[0, 1, 0, 0].all()  # frame 2 is back to 0 at (0, 0): a change of 9 again
    assert mask.sum() == 6

    # A video whose only change after the context is one pixel at the first predicted frame: 1 of the predicted
    # dimensions moves; moving and static nats recombine to the model's mean.
    config = vpn_tf.get_config("tiny", batch_size=2)
    model = vpn_tf.build_model(config)
    still = np.repeat(rng.integers(0, 256, (2, 1, *config.frame_shape)).astype(np.uint8), config.num_frames, axis=1)
    still[0, config.context_frames :, 3, 4] ^= 0xFF  # a change of at least 1: > threshold 0 from that frame on
    out, per_sequence = score(config, model, [{"video": still}], threshold=0)
    predicted = 2 * (config.num_frames - config.context_frames) * config.height * config.width
    assert out["moving_fraction"] == pytest.approx(1 / predicted)
    log_prob = model.log_prob(still).numpy().astype(np.float64)
    assert out["moving_nats_per_dim"] == pytest.approx(-log_prob[0, 0, 3, 4, 0], rel=1e-5)
    f = out["moving_fraction"]
    recombined = f * out["moving_nats_per_dim"] + (1 - f) * out["static_nats_per_dim"]
    assert recombined == pytest.approx(-log_prob.mean(), rel=1e-5)
    np.testing.assert_allclose(per_sequence, -log_prob.sum(axis=(2, 3, 4)).mean(1), rtol=1e-5)
    assert out["nats_per_frame"] == pytest.approx(per_sequence.mean())


@large
def test_context_ablation_main_reports_the_ablation_with_its_paired_difference(tmp_path):
    """`python -m bench.context_ablation` on a one-step tiny run (no actions, so no rotation): the zeroed context,
    its paired difference with the sign of ablated minus as trained."""
    import subprocess
    import sys

    from tests.scripts import ENV, ROOT, run_script

    run_script(
        "train.py",
        "--config",
        "tiny",
        "--steps",
        "1",
        "--no_progress",
        "--no_samples",
        "--workdir",
        tmp_path / "run",
        check=True,
    )
    cmd = [
        sys.executable,
        "-m",
        "bench.context_ablation",
        "--workdir",
        str(tmp_path / "run"),
        "--split",
        "validation",
        "--num_sequences",
        "3",
    ]
    out = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["count"] == 3 and "actions_rotated" not in record
    full, ablated = record["with_context"], record["context_zeroed"]
    diff = ablated["paired_difference"]
    assert diff["mean"] == pytest.approx(ablated["nats_per_frame"] - full["nats_per_frame"], abs=1e-6)
    assert diff["stderr"] >= 0 and 0 <= full["moving_fraction"] <= 1


@large
def test_memory_is_read_from_the_gpu_allocator_when_a_gpu_is_visible(monkeypatch):
    import tensorflow as tf

    from bench import common

    assert common.bench_device() == "/cpu:0"
    mb, source = common.peak_memory_mb("/cpu:0")
    assert source == "host_vmhwm" and mb > 10  # this process holds TensorFlow
    fake = [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake if kind == "GPU" else [])
    calls = []
    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", lambda d: calls.append(("reset", d)))
    monkeypatch.setattr(
        tf.config.experimental, "get_memory_info", lambda d: calls.append(("read", d)) or {"peak": 3 * 2**20}
    )
    device = common.bench_device()
    assert device == "/gpu:0"
    common.reset_peak_memory(device)
    assert common.peak_memory_mb(device) == (3.0, "gpu_allocator_peak")
    assert calls == [("reset", "GPU:0"), ("read", "GPU:0")]
    assert common.machine()["gpus"] == ["/physical_device:GPU:0"]


MACHINE = {
    "cpu": "Test CPU 9000",
    "cores": 2,
    "cores_usable": 2,
    "memory_gib": 23.4,
    "tensorflow": "2.99.0",
    "python": "3.11.7",
    "onednn": True,
    "tf_enable_onednn_opts": None,
    "gpus": [],
    "gpu_models": [],
}


def _fake_records(module, args, env):
    """Small records of the fields bench.run renders, per benchmark and arguments (no benchmark is run)."""
    from bench.sampling import WAYS

    device = "/cpu:0" if env else "/gpu:0"  # bench.run hides GPUs from the CPU sections through env
    if module == "train_step":
        name = "moving_mnist_paper" if "moving_mnist_paper" in args else "cpu_moving_mnist"
        precision = "bfloat16" if "bfloat16" in args else "float32"
        return [
            {
                "bench": f"train_step/{name}",
                "precision": precision,
                "xla": "--xla" in args,
                "utilisation": 0.7,
                "seconds_per_step": 3.0,
                "device": device,
                "peak_memory_mb": 123,
            }
        ]
    if module == "sampling" and "--serving" in args:
        ways = [w for w in WAYS if w != "export_compared"]
        # seconds grow with the frames, so every per-added-frame figure and ratio is defined
        return [
            {
                "bench": "sampling_serving",
                "way": w,
                "batch": b,
                "frames": f,
                "seconds": 0.1 * b * (f + k + 1),
                "first_call_seconds": 1.0,
            }
            for k, w in enumerate(ways)
            for b in (1, 16)
            for f in (1, 10)
        ]
    if module == "sampling":
        return [{"bench": "sampling/cpu_moving_mnist", "batch": 16, "xla": True, "naive_over_cached": 1500.0}]
    if module == "data":
        return [
            {"bench": "data/pushing_sim", "frames_per_second_one_core": 80.0},
            {"bench": "data/moving_mnist_stream", "ratio": 1000.0},
        ]
    if module == "memory" and "--paper" in args:
        common = {"bench": "memory_paper/moving_mnist_paper", "precision": "float32", "seconds_per_step_15_frames": 3.0}
        return [
            {
                **common,
                "remat": False,
                "fixed_mb": 1024,
                "per_sequence_20_frames_mb": 10240,
                "predicted_peak_mb_20_frames": 11264,
            },
            {**common, "remat": True, "fixed_mb": 999, "measured_peak_mb_20_frames": 4096},
        ]
    if module == "memory":
        return [{"bench": "memory/cpu_moving_mnist", "batch": 2, "frames": 20, "peak_rss_mb": 2684}]
    raise AssertionError(f"bench.run ran an unexpected benchmark: {module} {args}")


def _fake_suite(monkeypatch, machine=MACHINE, override=None):
    """bench.run with every benchmark faked: returns the list of (module, args, env) it ran."""
    from bench import common
    from bench import run as bench_run

    calls = []

    def fake_run(module, *args, env=None):
        calls.append((module, args, env))
        if override and (module, args) in override:
            return override[module, args]
        return _fake_records(module, args, env)

    monkeypatch.setattr(bench_run, "_run", fake_run)
    monkeypatch.setattr(common, "machine", lambda: dict(machine))
    return calls


SECTIONS = [
    "## Training step: FLOP utilisation",
    "## Sampling (",
    "## Served sampling latency",
    "## Data",
    "## Memory: peak resident memory",
    "## Memory at paper scale",
    "## GPU",
]


@pytest.mark.parametrize("gpus", [[], ["/physical_device:GPU:0"]])
def test_full_report_is_whole_and_names_the_machine(tmp_path, monkeypatch, gpus):
    """`bench.run --full` writes every section from this run's records, the machine in the header, a GPU section
    (measured when a GPU is present, otherwise a line saying so), and no process words."""
    import datetime
    import re

    from bench import run as bench_run
    from bench.sampling import WAYS, serving_table

    machine = {**MACHINE, "gpus": gpus, "gpu_models": ["Test GPU" for _ in gpus]}
    calls = _fake_suite(monkeypatch, machine)
    out = tmp_path / "BENCHMARKS.md"
    bench_run.main(["--full", "--out", str(out)])
    text = out.read_text()

    positions = [text.find(heading) for heading in SECTIONS]
    assert all(p >= 0 for p in positions), [h for h, p in zip(SECTIONS, positions, strict=True) if p < 0]
    head = text[: positions[0]]
    for fact in ("Test CPU 9000, 2 cores", "23.4 GiB", "| oneDNN | on (TF_ENABLE_ONEDNN_OPTS unset", "2.99.0"):
        assert fact in head, fact
    assert "| TensorFlow |" in head and "| Python | 3.11.7 |" in head
    assert "target" not in text.lower()
    assert re.findall(r"\d{4}-\d{2}-\d{2}", text) == [datetime.date.today().isoformat()]  # only the run's date

    # The serving section is the table of the run's own serving records, with its command.
    assert ("sampling", bench_run.SERVING, bench_run.CPU_ONLY) in calls
    serving = _fake_records("sampling", bench_run.SERVING, bench_run.CPU_ONLY)
    assert serving_table(serving, [1, 16], [1, 10]) in text
    assert f"\npython -m bench.sampling {' '.join(bench_run.SERVING)}\n" in text  # its command, to rerun it
    assert all(label in text for way, label in WAYS.items() if way != "export_compared")
    assert "memory_paper/" not in text and "| moving_mnist_paper | float32 | yes | 4,096 (measured) |" in text

    gpu_calls = [c for c in calls if c[2] is None]
    if gpus:
        assert "## GPU: training step" in text and "/physical_device:GPU:0 (Test GPU)" in text
        assert gpu_calls and all(module == "train_step" for module, _, _ in gpu_calls)
        assert "| /gpu:0 | 123 |" in text
    else:
        assert "GPUs were not measured: TensorFlow saw none on this machine." in text
        assert "| GPUs | none |" in head
        assert not gpu_calls  # every benchmark ran with GPUs hidden


def test_quick_report_leaves_the_full_sections_out_and_missing_records_are_errors(tmp_path, monkeypatch):
    from bench import run as bench_run

    calls = _fake_suite(monkeypatch)
    out = tmp_path / "quick.md"
    bench_run.main(["--out", str(out)])
    text = out.read_text()
    assert "## Served sampling latency" not in text and "## Memory at paper scale" not in text
    assert "## Training step" in text and "## Memory: peak resident memory" in text
    assert not any("--serving" in args or "--paper" in args for _, args, _ in calls)

    # A benchmark that printed nothing, or serving records short of a cell: the error names the command.
    _fake_suite(monkeypatch, override={("sampling", bench_run.SERVING): []})
    with pytest.raises(RuntimeError, match=r"python -m bench\.sampling --serving .* printed no records"):
        bench_run.main(["--full", "--out", str(tmp_path / "full.md")])
    partial = _fake_records("sampling", bench_run.SERVING, bench_run.CPU_ONLY)[1:]
    _fake_suite(monkeypatch, override={("sampling", bench_run.SERVING): partial})
    with pytest.raises(RuntimeError, match=r"bench\.sampling --serving .* no record for .*'in_process_xla', 1, 1"):
        bench_run.main(["--full", "--out", str(tmp_path / "full.md")])
    # Records measured in another environment than the header's (here: oneDNN off) are refused.
    other = [{**r, "onednn": False} for r in _fake_records("data", (), bench_run.CPU_ONLY)]
    _fake_suite(monkeypatch, override={("data", ("--batches", "20")): other})
    with pytest.raises(RuntimeError, match="disagree with this machine on onednn"):
        bench_run.main(["--out", str(tmp_path / "quick.md")])
    assert not (tmp_path / "full.md").exists()
