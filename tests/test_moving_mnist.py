import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import mnist
from datasets import moving_mnist as mm
from datasets import tfrecord as tfr


def _take(ds, n):
    return [{k: v.numpy() for k, v in ex.items()} for ex in ds.take(n)]


def _reference_video(images, seed):
    """The protocol in numpy, from the generator's own seeds: Srivastava et al.'s loop, clip and negate."""
    s_digits, s_traj = tf.random.experimental.stateless_split(seed, 2, alg="philox").numpy()
    idx = tf.random.stateless_uniform([2], s_digits, 0, len(images), tf.int32, alg="philox").numpy()
    s_pos, s_theta = tf.random.experimental.stateless_split(s_traj, 2, alg="philox").numpy()
    pos = tf.random.stateless_uniform([2, 2], s_pos, alg="philox").numpy().astype(np.float32)
    theta = tf.random.stateless_uniform([2], s_theta, alg="philox").numpy() * np.float32(2 * np.pi)
    vel = np.float32(0.1) * np.stack([np.sin(theta), np.cos(theta)], -1).astype(np.float32)
    video = np.zeros((20, 64, 64), np.uint8)
    for t in range(20):
        pos = pos + vel
        hit = (pos <= 0) | (pos >= 1)
        vel = np.where(hit, -vel, vel)
        pos = np.clip(pos, 0, 1)
        for d in range(2):
            oy, ox = np.floor(pos[d] * 36).astype(int)
            region = video[t, oy : oy + 28, ox : ox + 28]
            np.maximum(region, images[idx[d]], out=region)
    return video[..., None], idx


def test_train_stream_is_deterministic_and_seed_dependent():
    a = _take(mm.train_stream(seed=3), 3)
    b = _take(mm.train_stream(seed=3), 3)
    c = _take(mm.train_stream(seed=4), 3)
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x["video"], y["video"])
        assert not np.array_equal(x["video"], z["video"])
        assert x["video"].shape == (20, 64, 64, 1) and x["video"].dtype == np.uint8


def test_stream_resumes_and_shards_without_overlap():
    full = _take(mm.train_stream(seed=5, with_digit_indices=True), 6)
    resumed = _take(mm.train_stream(seed=5, start=4, with_digit_indices=True), 2)
    np.testing.assert_array_equal(resumed[0]["video"], full[4]["video"])
    np.testing.assert_array_equal(resumed[1]["video"], full[5]["video"])
    shard0 = _take(mm.train_stream(seed=5, shard_index=0, num_shards=2), 3)
    shard1 = _take(mm.train_stream(seed=5, shard_index=1, num_shards=2), 3)
    for i in range(3):
        np.testing.assert_array_equal(shard0[i]["video"], full[2 * i]["video"])
        np.testing.assert_array_equal(shard1[i]["video"], full[2 * i + 1]["video"])
    with pytest.raises(ValueError, match="shard_index"):
        mm.train_stream(seed=0, shard_index=2, num_shards=2)


def test_train_digits_come_from_mnist_train_and_match_the_protocol():
    train_images = mnist.load("train")[0]
    seed = 9
    for i, ex in enumerate(_take(mm.train_stream(seed=seed, with_digit_indices=True), 4)):
        s = mm.sequence_seed(seed * 2 + mm.TRAIN_SEED_SALT, i)
        ref, idx = _reference_video(train_images, s)
        np.testing.assert_array_equal(ex["digits"], idx)
        np.testing.assert_array_equal(ex["video"], ref)  # two training digits, placed and combined by max


def test_test_digits_come_from_mnist_test(tmp_path):
    test_images = mnist.load("test")[0]
    videos = [ex["video"].numpy() for ex in mm.load_test(str(tmp_path), num_sequences=3, progress=False)]
    for i, video in enumerate(videos):
        ref, _ = _reference_video(test_images, mm.sequence_seed(mm.TEST_SEED * 2, i))
        np.testing.assert_array_equal(video, ref)


def test_digits_stay_inside_and_bounce():
    for i in range(20):
        pos = mm.trajectories(mm.sequence_seed(1, i), num_frames=200).numpy()  # [2, 200, 2]
        assert pos.min() >= 0.0 and pos.max() <= 1.0
        step = np.diff(pos, axis=1)
        assert np.abs(step).max() <= 0.1 + 1e-6
        # Direction reverses only at a wall, and every digit meets a wall within 200 frames.
        flips = np.sign(step[:, 1:]) * np.sign(step[:, :-1]) < 0
        d, t, axis = np.nonzero(flips)
        assert len(d) > 0
        at_wall = pos[d, t + 1, axis]
        assert np.all((at_wall == 0.0) | (at_wall == 1.0))


def test_both_digits_visible_in_the_first_frame():
    ex = _take(mm.train_stream(seed=0, with_digit_indices=True), 1)[0]
    images = mnist.load("train")[0]
    ink = (ex["video"][0, ..., 0] > 0).sum()
    assert ink >= max((images[j] > 0).sum() for j in ex["digits"])


def test_full_test_set_size_shape_dtype_and_lower_bound(tmp_path):
    ds = mm.load_test(str(tmp_path), progress=False)
    n = 0
    for batch in ds.batch(1000):
        assert batch["video"].shape[1:] == (20, 64, 64, 1) and batch["video"].dtype == tf.uint8
        n += len(batch["video"])
    assert n == mm.TEST_SIZE
    mean, se, count = mm.lower_bound(ds)
    assert count == mm.TEST_SIZE and 0 < se < 1
    # The paper's 86.3 nats/frame is for the standard test file; ours is the same protocol, so close to it.
    assert abs(mean - 86.3) < 3 * se + 1.0


def test_lower_bound_against_numpy():
    videos = np.stack([ex["video"] for ex in _take(mm.train_stream(seed=2), 5)])
    ds = tf.data.Dataset.from_tensor_slices({"video": videos})
    mean, _, _ = mm.lower_bound(ds, batch_size=2)
    z = videos[:, 10:].astype(np.float64) / 255
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.nan_to_num(z * np.log(z)) + np.nan_to_num((1 - z) * np.log(1 - z)))
    assert mean == pytest.approx(h.sum(axis=(2, 3, 4)).mean(), rel=1e-5)


def test_cache_regenerates_byte_identically(tmp_path):
    out = mm.build_test(str(tmp_path), num_sequences=40, progress=False)
    assert mm.verify_test_cache(str(tmp_path), num_sequences=40) == {}
    shard = sorted(f for f in os.listdir(out) if f.endswith(".gz"))[1]
    before = open(os.path.join(out, shard), "rb").read()
    os.remove(os.path.join(out, shard))
    assert shard in mm.verify_test_cache(str(tmp_path), num_sequences=40)
    list(mm.load_test(str(tmp_path), num_sequences=40, progress=False))  # regenerates the missing shard
    assert open(os.path.join(out, shard), "rb").read() == before
    assert mm.verify_test_cache(str(tmp_path), num_sequences=40) == {}


def test_missing_cache_without_build_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_test"):
        mm.load_test(str(tmp_path), num_sequences=5, build_if_missing=False)


def test_standard_npy_reader(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64)).astype(np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, arr)
    got = [ex["video"].numpy() for ex in mm.read_npy(str(path))]
    assert len(got) == 3 and got[1].shape == (20, 64, 64, 1)
    np.testing.assert_array_equal(got[1][..., 0], arr[:, 1])
    np.save(path, arr[:, :, :32])
    with pytest.raises(tfr.DataError, match=r"mnist_test_seq.npy.*\[20, 10000, 64, 64\].*\(20, 3, 32, 64\)"):
        mm.read_npy(str(path))
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        mm.read_npy(str(tmp_path / "nope.npy"))


def test_tfds_without_preparation_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="moving_mnist"):
        mm.load_tfds(data_dir=str(tmp_path))


def test_lower_bound_cli(tmp_path, capsys):
    arr = np.zeros((20, 4, 64, 64), np.uint8)
    arr[:, :, 10:20, 10:20] = 128
    np.save(tmp_path / "seq.npy", arr)
    mm.main(["lower_bound", "--source", str(tmp_path / "seq.npy")])
    out = capsys.readouterr().out
    z = 128 / 255
    per_frame = 100 * -(z * np.log(z) + (1 - z) * np.log(1 - z))
    assert f"lower bound {per_frame:.2f} nats/frame" in out and "4 sequences" in out


@pytest.mark.large
def test_two_processes_building_the_test_cache_at_once_both_succeed(tmp_path):
    import subprocess
    import sys

    from tests.scripts import ENV, ROOT

    cmd = [sys.executable, "-m", "datasets.moving_mnist", "build_test", "--num_sequences", "40"]
    procs = [
        subprocess.Popen([*cmd, "--cache_dir", str(tmp_path)], cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert mm.verify_test_cache(str(tmp_path), num_sequences=40) == {}
    assert not [f for f in os.listdir(next(tmp_path.iterdir())) if "incomplete" in f]
