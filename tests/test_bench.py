"""The benchmark scripts run (a smoke run on the tiny preset) and compute their ratios from what they timed.

No timing is asserted: the machines are shared and noisy.
"""

from bench.common import interleaved
from bench.train_step import run
from vpn_tf import get_config
from vpn_tf.cost import training_flops_per_sequence


def test_interleaved_alternates_the_functions_and_keeps_each_ones_fastest_round():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    best = interleaved(fns, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(best) == {"a", "b"} and all(0 <= v < float("inf") for v in best.values())


def test_train_step_benchmark_reports_consistent_ratios_on_the_tiny_preset():
    overrides = {"hidden": 16, "image_size": 16}  # big enough that the rounded GFLOP/s figures keep two digits
    record = run("tiny", batch=2, frames=3, repeats=1, overrides=overrides)
    config = get_config("tiny", batch_size=2, num_frames=3, **overrides)
    flops = training_flops_per_sequence(config, 3) * 2
    assert record["tflop_per_step"] == round(flops / 1e12, 4)
    assert abs(record["achieved_gflops"] * record["seconds_per_step"] - flops / 1e9) <= 0.05 * flops / 1e9
    assert (
        record["micro_benchmark_shape"]
        == f"[4, {config.image_size}, {config.image_size}, {config.hidden}] -> {4 * config.hidden}"
    )
    assert record["achieved_gflops"] > 0
    ratio = record["achieved_gflops"] / record["conv3x3_c_to_4c_microbenchmark_gflops"]
    assert abs(record["utilisation"] - ratio) <= 0.02 * ratio + 0.001
