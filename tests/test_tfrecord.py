import os

import numpy as np
import pytest

from datasets import tfrecord as tfr


def _videos(n, t=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (t, 4, 5, 3)).astype(np.uint8) for _ in range(n)]


def test_round_trip_with_vectors_in_order(tmp_path):
    vids = _videos(7)
    acts = [np.full((3, 5), i, np.float32) for i in range(7)]
    with tfr.ShardedVideoWriter(str(tmp_path), "v", 7, 3) as w:
        for v, a in zip(vids, acts, strict=True):
            w.write(tfr.encode_video_example(v, actions=a, states=-a))
    assert [os.path.basename(p) for p in w.paths] == [f"v-0000{i}-of-00003.tfrecord.gz" for i in range(3)]
    files = tfr.list_files(str(tmp_path / "*.gz"))
    got = list(tfr.checked_iterator(tfr.read_videos(files, action_dim=5, state_dim=5, frame_shape=(4, 5, 3)), files))
    assert len(got) == 7
    for g, v, a in zip(got, vids, acts, strict=True):
        np.testing.assert_array_equal(g["video"].numpy(), v)
        np.testing.assert_array_equal(g["actions"].numpy(), a)
        np.testing.assert_array_equal(g["states"].numpy(), -a)


def test_writes_are_byte_identical(tmp_path):
    for d in ("a", "b"):
        with tfr.ShardedVideoWriter(str(tmp_path / d), "v", 4, 2) as w:
            for v in _videos(4):
                w.write(tfr.encode_video_example(v))
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_interrupted_writer_leaves_no_finished_looking_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with tfr.ShardedVideoWriter(str(tmp_path), "v", 4, 2) as w:
            for v in _videos(3):
                w.write(tfr.encode_video_example(v))
            raise RuntimeError("killed")
    names = sorted(os.listdir(tmp_path))
    assert names == ["v-00000-of-00002.tfrecord.gz"]  # the finished shard only; no partial file under any name
    with pytest.raises(ValueError, match="wrote 1 of the announced 2"):
        with tfr.ShardedVideoWriter(str(tmp_path / "c"), "v", 2, 1) as w:
            w.write(tfr.encode_video_example(_videos(1)[0]))


def test_bad_records_name_file_and_feature(tmp_path):
    with tfr.ShardedVideoWriter(str(tmp_path), "v", 1, 1) as w:
        w.write(tfr.encode_video_example(_videos(1)[0]))
    files = tfr.list_files(str(tmp_path / "*.gz"))
    with pytest.raises(tfr.DataError, match=r"v-00000-of-00001.tfrecord.gz: feature actions: missing"):
        list(tfr.checked_iterator(tfr.read_videos(files, action_dim=5), files))
    with pytest.raises(tfr.DataError, match=r"feature video/shape: frames are not \(64, 64, 1\)"):
        list(tfr.checked_iterator(tfr.read_videos(files, frame_shape=(64, 64, 1)), files))
    with pytest.raises(tfr.DataError, match="No files match"):
        tfr.list_files(str(tmp_path / "nothing*"))


def test_encoder_validates():
    with pytest.raises(tfr.DataError, match="uint8"):
        tfr.encode_video_example(np.zeros((2, 3, 3, 1), np.float32))
    with pytest.raises(tfr.DataError, match="actions must be"):
        tfr.encode_video_example(np.zeros((2, 3, 3, 1), np.uint8), actions=np.zeros((3, 5)))
