"""The repository's `datasets/` folder must resolve as ours here and must never be installed."""

import os
import subprocess
import sys
import zipfile

import pytest

import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.large
def test_datasets_resolves_to_the_repository_folder():
    assert os.path.dirname(os.path.abspath(datasets.__file__)) == os.path.join(ROOT, "datasets")
    # Also from a fresh interpreter started in the repository, as `python train.py` is.
    out = subprocess.run(
        [sys.executable, "-c", "import datasets, os; print(os.path.abspath(datasets.__file__))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == os.path.join(ROOT, "datasets", "__init__.py")


@pytest.mark.large
def test_wheel_installs_vpn_tf_but_no_top_level_datasets(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"vpn_tf"}, tops
    assert "vpn_tf/models/vpn.py" in names and "vpn_tf/layers/masked_conv.py" in names
