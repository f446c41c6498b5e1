import json
import os

import numpy as np
import pytest

from datasets import pushing_sim as sim
from datasets import robot_pushing as rp


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    stats = {}
    for split, n in (("train", 3), ("val", 2), ("test_seen", 2), ("test_novel", 3)):
        stats[split] = sim.generate(str(out), split, n, seed=1, workers=1, num_shards=1, progress=False)
    return str(out), stats


def test_same_seed_gives_identical_files_whatever_the_workers(generated, tmp_path):
    out, _ = generated
    sim.generate(str(tmp_path), "test_novel", 3, seed=1, workers=2, num_shards=1, progress=False)
    name = "push_testnovel/push_testnovel.tfrecord-00000-of-00001"
    assert open(os.path.join(out, name), "rb").read() == open(tmp_path / name, "rb").read()
    other = sim.Simulator().sequence("test_novel", 2, 0)[0]
    again = sim.Simulator().sequence("test_novel", 1, 0)[0]
    assert not np.array_equal(other, again)  # another seed, another sequence


def test_schema_round_trip_through_the_pushing_reader(generated):
    out, _ = generated
    assert len(rp.split_files(out, "validation")) == 1  # push_val/ is used as the validation split
    for split, n in (("train", 3), ("validation", 2), ("test_seen", 2), ("test_novel", 3)):
        files = rp.split_files(out, split)
        exs = list(rp.iterate(rp.read(out, split, files=files), files))
        assert len(exs) == n
        for ex in exs:
            v, a, s = ex["video"].numpy(), ex["actions"].numpy(), ex["states"].numpy()
            assert v.shape == (20, 64, 64, 3) and v.dtype == np.uint8
            assert a.shape == (20, 5) and s.shape == (20, 5)
            # Commands stay over the tray and near its floor; measured poses follow them.
            assert np.all((a[:, 0] > 0.25) & (a[:, 0] < 0.85) & (np.abs(a[:, 1]) < 0.3))
            assert np.all((a[:, 2] > 0.0) & (a[:, 2] < 0.3))
            assert np.all(np.abs(a[:, 3]) < 0.5) and np.all(np.abs(s[:, 3]) < 0.5)
            assert np.abs(s[1:, :3] - a[:-1, :3]).mean() < 0.05
    # Training windows read the simulated data like the real data.
    ex = next(iter(rp.train_dataset(out, seed=0)))
    assert ex["video"].shape == (12, 64, 64, 3)


def test_seen_and_novel_objects_are_disjoint(generated):
    _, stats = generated
    assert set(sim.object_ids("train")).isdisjoint(sim.object_ids("test_novel"))
    assert set(sim.object_ids("val")) == set(sim.object_ids("test_seen")) == set(range(900))
    s = sim.Simulator()
    for split in ("train", "test_seen", "test_novel"):
        for i in range(3):
            used = s.sequence(split, 5, i)[3]["objects"]
            assert 1 <= len(used) <= 3
            assert all((k >= 900) == (split == "test_novel") for k in used)
    with pytest.raises(ValueError, match="split"):
        sim.object_ids("test")


def test_statistics_show_pushes_an_arm_and_motion(generated):
    out, stats = generated
    saved = json.load(open(os.path.join(out, "stats_test_novel.json")))
    assert saved["num_sequences"] == 3 and saved["frames_per_second"] > 0
    for s in stats.values():
        assert s["mean_arm_visible_fraction"] > 0.9
        assert s["fraction_with_changing_frames"] == 1.0
    moved = np.mean([s["fraction_with_object_moved"] for s in stats.values()])
    assert moved > 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="num"):
        sim.generate("/tmp/unused", "train", 0, seed=0, progress=False)
    with pytest.raises(SystemExit):
        sim.main(["--out", "/tmp/unused", "--split", "holdout"])


def test_example_proto_parses_with_tensorflow():
    import tensorflow as tf

    from datasets.example_proto import example_bytes

    data = example_bytes({"b": [b"xy", b""], "f": [1.5, -2.0], "a/0/k": [0.25]})
    ex = tf.train.Example.FromString(data)
    assert list(ex.features.feature["b"].bytes_list.value) == [b"xy", b""]
    assert list(ex.features.feature["f"].float_list.value) == [1.5, -2.0]
    assert list(ex.features.feature["a/0/k"].float_list.value) == [0.25]


def test_a_simulation_that_goes_non_finite_is_rerun_fresh_and_non_finite_poses_are_never_written(monkeypatch):
    """Seen once in 2,000 train sequences: NaN poses from a worker's long-lived physics connection. The sequence is
    simulated again in a fresh connection (the same random stream, so the same sequence as a fresh simulator
    gives); persistent failure is an error naming the sequence; the writer refuses non-finite values."""
    simulator = sim.Simulator()
    try:
        reference = simulator.sequence("train", 3, 0)
        real, real_close = sim.Simulator._simulate, sim.Simulator.close
        calls, closed = [], []
        monkeypatch.setattr(sim.Simulator, "close", lambda self: closed.append(1) or real_close(self))

        def flaky(self, split, seed, index):
            frames, actions, states, stats = real(self, split, seed, index)
            calls.append(len(closed))
            if len(calls) == 1:
                actions = actions.copy()
                actions[4, :3] = np.nan
            return frames, actions, states, stats

        monkeypatch.setattr(sim.Simulator, "_simulate", flaky)
        frames, actions, states, _ = simulator.sequence("train", 3, 0)
        assert calls == [0, 1]  # the second run had a fresh connection
        for a, b in zip((frames, actions, states), reference[:3], strict=True):
            np.testing.assert_array_equal(a, b)

        def broken(self, split, seed, index):
            frames, actions, states, stats = real(self, split, seed, index)
            return frames, actions, np.full_like(states, np.nan), stats

        monkeypatch.setattr(sim.Simulator, "_simulate", broken)
        with pytest.raises(RuntimeError, match="train sequence 5 .seed 3.: non-finite poses in 2 fresh"):
            simulator.sequence("train", 3, 5, attempts=2)
    finally:
        simulator.close()
    bad = reference[1].copy()
    bad[7, 3] = np.inf
    with pytest.raises(ValueError, match=r"actions\[7\] is not finite"):
        sim.encode_sequence(reference[0], bad, reference[2])
