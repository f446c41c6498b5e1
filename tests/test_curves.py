import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.scripts import run_script
from vpn_tf import curves


def _write(logdir, points, tag="nats_per_frame"):
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step, value in points:
            tf.summary.scalar(tag, value, step=step)
            tf.summary.scalar("wall_minutes", step / 10.0, step=step)
        tf.summary.image("pictures", np.zeros([1, 4, 4, 1], np.float32), step=0)
    writer.close()


def _run(workdir, train_points, eval_points):
    _write(workdir / "train", train_points)
    _write(workdir / "eval", eval_points)


def test_read_scalars_exact_values_sorted_and_a_resume_keeps_the_later_write(tmp_path):
    _write(tmp_path, [(20, 5.0), (10, 7.5), (30, 4.0)])
    time.sleep(1.1)  # event files are named by the second they were opened
    _write(tmp_path, [(30, 3.5), (40, 3.0)])  # a resumed run redoing step 30
    got = curves.read_scalars(str(tmp_path))
    assert set(got) == {"nats_per_frame", "wall_minutes"}  # the image is not a scalar
    steps, values = got["nats_per_frame"]
    np.testing.assert_array_equal(steps, [10, 20, 30, 40])
    np.testing.assert_allclose(values, [7.5, 5.0, 3.5, 3.0], rtol=1e-6)


def test_read_scalars_names_missing_logs(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TensorBoard log directory"):
        curves.read_scalars(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"No event files"):
        curves.read_scalars(str(tmp_path))


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(curves.smooth([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(curves.smooth([1.0, 3.0, 5.0], 1), [1.0, 3.0, 5.0])
    np.testing.assert_allclose(curves.smooth([1.0, 3.0, 5.0], 10), [1.0, 2.0, 3.0])


@pytest.mark.large
def test_plot_curves_py_draws_runs_and_names_bad_input(tmp_path):
    from PIL import Image

    _run(tmp_path / "a", [(s, 100.0 / s) for s in range(1, 50)], [(25, 4.0), (49, 2.0)])
    _run(tmp_path / "b", [(s, 120.0 / s) for s in range(1, 50)], [(25, 5.0), (49, 3.0)])
    out = tmp_path / "fig" / "curves.png"
    for x in ("step", "wall_minutes"):
        run_script(
            "plot_curves.py",
            "--run",
            f"VPN={tmp_path / 'a'}",
            "--run",
            f"baseline={tmp_path / 'b'}",
            "--out",
            out,
            "--bound",
            "1.5",
            "--x",
            x,
            check=True,
        )
        assert Image.open(out).size == (1100, 400)
        os.remove(out)
    bad = run_script("plot_curves.py", "--run", str(tmp_path / "a"), "--out", out)
    assert bad.returncode != 0 and "LABEL=WORKDIR" in bad.stderr
    bad = run_script("plot_curves.py", "--run", f"a={tmp_path / 'a'}", "--out", out, "--tag", "nats_per_dim")
    assert bad.returncode != 0 and "no scalar 'nats_per_dim'" in bad.stderr and "nats_per_frame" in bad.stderr
    assert not out.exists()
