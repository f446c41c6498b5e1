"""The shipped checkpoints: small, loadable, reproduce RESULTS.md, and `sample.py` works on them."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.scripts import ENV, ROOT, run_script

pytestmark = pytest.mark.large  # fresh processes, shipped checkpoints or benchmarks: `pytest -m large`

SHIPPED = os.path.join(ROOT, "pretrained", "cpu_moving_mnist")


def _smoke_line():
    text = open(os.path.join(ROOT, "RESULTS.md")).read()
    m = re.search(r"`python evaluate.py --num_sequences (\d+)` prints ([\d.]+) nats/frame", text)
    assert m, "RESULTS.md has no smoke-check line for the shipped checkpoint"
    return int(m.group(1)), float(m.group(2))


def test_shipped_checkpoint_is_small_and_names_its_config():
    files = []
    for d, _, names in os.walk(SHIPPED):
        files += [os.path.join(d, n) for n in names]
    assert sum(os.path.getsize(f) for f in files) <= 20 * 2**20
    with open(os.path.join(SHIPPED, "config.json")) as f:
        assert json.load(f)["name"] == "cpu_moving_mnist"


def test_evaluate_py_reproduces_the_results_md_number(tmp_path):
    n, expected = _smoke_line()
    run_script("evaluate.py", "--num_sequences", n, "--json", tmp_path / "m.json", check=True)
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["count"] == n
    assert got["nats_per_frame"] == pytest.approx(expected, abs=0.01)


def test_sample_py_runs_on_the_shipped_model_without_arguments(tmp_path):
    out = run_script(
        "sample.py",
        "--num_sequences",
        "2",
        "--num_samples",
        "1",
        "--generate_frames",
        "2",
        "--out",
        tmp_path,
        check=True,
    )
    # The default is the binary-input VPN (its samples keep their ink, RESULTS.md), not evaluate.py's grey one.
    assert os.path.join("pretrained", "cpu_moving_mnist_binarized") in out.stdout
    assert (tmp_path / "grid.png").exists() and (tmp_path / "sequence_1.gif").exists()


def test_shipped_pushing_pair_reproduces_the_results_md_numbers(tmp_path):
    """The simulated pushing VPN and baseline: their RESULTS.md smoke line on the first test_seen sequences, which
    `datasets.pushing_sim` regenerates exactly (sequence i is a function of split, seed and i alone)."""
    text = open(os.path.join(ROOT, "RESULTS.md")).read()
    m = re.search(
        r"`python evaluate.py --workdir pretrained/cpu_pushing_sim --against pretrained/cpu_pushing_sim_baseline "
        r"--split test_seen --num_sequences (\d+) --data_dir DIR` prints ([\d.]+) nats/dim and a difference of "
        r"([-+][\d.]+)",
        text,
    )
    assert m, "RESULTS.md has no smoke-check line for the shipped pushing checkpoints"
    n, expected, difference = m.group(1), float(m.group(2)), float(m.group(3))
    data = tmp_path / "data"
    cmd = ["-m", "datasets.pushing_sim", "--out", data, "--split", "test_seen", "--num", n]
    subprocess.run([sys.executable, *map(str, cmd)], env=ENV, cwd=ROOT, check=True, capture_output=True)
    vpn, baseline = (os.path.join(ROOT, "pretrained", m) for m in ("cpu_pushing_sim", "cpu_pushing_sim_baseline"))
    flags = ("--workdir", vpn, "--against", baseline, "--split", "test_seen", "--num_sequences", n, "--data_dir", data)
    run_script("evaluate.py", *flags, "--json", tmp_path / "m.json", check=True)
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["count"] == int(n) and got["against"]["name"] == "cpu_pushing_sim_baseline"
    # Physics could differ in the last bits between hosts: the tolerance allows that, not another scene.
    assert got["nats_per_dim"] == pytest.approx(expected, abs=0.02)
    assert got["against"]["difference"] == pytest.approx(difference, abs=0.01)
    for d in (vpn, baseline):
        assert sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs) <= 5 * 2**20
