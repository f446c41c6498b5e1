"""The shipped cpu_moving_mnist checkpoint: small, loadable, reproduces RESULTS.md, and `sample.py` works on it."""

import json
import os
import re

import pytest

from tests.scripts import ROOT, run_script

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
        "sample.py", "--num_sequences", "2", "--num_samples", "1", "--num_frames", "2", "--out", tmp_path, check=True
    )
    assert "pretrained" in out.stdout
    assert (tmp_path / "grid.png").exists() and (tmp_path / "sequence_1.gif").exists()
