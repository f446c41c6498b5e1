"""The repository's `datasets/` folder must resolve as ours here, and be installed only inside the package
(`vpn_tf.datasets`), never as a top-level `datasets`; `pip install .` installs the four commands."""

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
    # The data modules and the shipped MNIST files the commands read, inside the package.
    assert "vpn_tf/datasets/pipelines.py" in names and "vpn_tf/datasets/mnist/train-images-idx3-ubyte.gz" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(tmp_path / wheel).read(entry_points).decode()
    for command in ("train", "evaluate", "sample", "export"):
        assert f"vpn-{command} = vpn_tf.commands.{command}:main" in scripts


@pytest.mark.large
def test_installed_commands_run_outside_the_checkout(tmp_path):
    """`pip install .` into a fresh environment (TensorFlow from this one): the commands answer --help and train
    from the installed data modules and MNIST files, run from a directory that is not the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", ROOT]
    subprocess.run(pip, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    work = tmp_path / "elsewhere"
    work.mkdir()
    for command in ("train", "evaluate", "sample", "export"):
        out = subprocess.run(
            [str(venv / "bin" / f"vpn-{command}"), "--help"], cwd=work, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0 and "usage:" in out.stdout, (command, out.stderr[-2000:])
    train = [str(venv / "bin" / "vpn-train"), "--config", "tiny", "--steps", "2", "--workdir", "run", "--no_progress"]
    out = subprocess.run(train, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import vpn_tf.commands as c; print(c.from_checkout())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == "False", where.stderr[-2000:]  # the installed copy, not this checkout
    assert (work / "run" / "checkpoints").is_dir()
