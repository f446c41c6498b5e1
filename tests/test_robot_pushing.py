import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import robot_pushing as rp
from datasets import tfrecord as tfr


def _sequence(t, h=48, w=60, offset=0):
    """Frames whose every pixel is 10 * (frame index + offset), actions[i] = i + offset, states[i] = -(i + offset)."""
    idx = np.arange(t) + offset
    frames = np.broadcast_to((10 * idx % 250).astype(np.uint8)[:, None, None, None], (t, h, w, 3)).copy()
    actions = np.repeat(idx[:, None], 5, axis=1).astype(np.float32)
    return frames, actions, -actions


def _write(path, sequences):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for frames, actions, states in sequences:
            w.write(rp.encode_push_example(frames, actions, states))


@pytest.fixture(scope="module")
def push_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("push")
    for split, n_files in (("push_train", 4), ("push_testseen", 1), ("push_testnovel", 1)):
        for k in range(n_files):
            seqs = [_sequence(22, offset=3 * k + s) for s in range(2)]
            _write(str(d / split / f"{split}.tfrecord-{k:05d}-of-{n_files:05d}"), seqs)
    return str(d)


def test_splits_follow_the_original_convention(push_dir, tmp_path):
    train, val = rp.split_files(push_dir, "train"), rp.split_files(push_dir, "validation")
    assert len(train) == 3 and len(val) == 1 and not set(train) & set(val)
    assert val[0].endswith("00003-of-00004")
    assert rp.split_files(push_dir, "test_novel")[0].endswith("push_testnovel.tfrecord-00000-of-00001")
    with pytest.raises(ValueError, match="split"):
        rp.split_files(push_dir, "test")
    with pytest.raises(tfr.DataError, match="push_testseen"):
        rp.split_files(str(tmp_path), "test_seen")


def test_full_sequences_shapes_ranges_and_alignment(push_dir):
    exs = list(rp.read(push_dir, "test_seen"))
    assert len(exs) == 2
    for ex in exs:
        v, a, s = ex["video"].numpy(), ex["actions"].numpy(), ex["states"].numpy()
        assert v.shape == (20, 64, 64, 3) and v.dtype == np.uint8
        assert a.shape == (20, 5) and s.shape == (20, 5)
        # Frame i shows 10 * action_i: frames and vectors stay aligned (JPEG keeps flat images within a level).
        np.testing.assert_allclose(v.reshape(20, -1).mean(1), 10 * a[:, 0] % 250, atol=1.0)
        np.testing.assert_array_equal(s, -a)


def test_preprocessing_centre_crops_then_resizes():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 10:50] = 200  # the centre square; the side bands (10 px each) must be cropped away
    out = rp.preprocess_frame(tf.constant(img)).numpy()
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, np.full((64, 64, 3), 200, np.uint8))


def test_training_subsequences(push_dir):
    ds = rp.train_dataset(push_dir, seed=0)
    starts = set()
    for ex in ds.take(24):
        a = ex["actions"].numpy()[:, 0]
        assert ex["video"].shape == (12, 64, 64, 3) and ex["states"].shape == (12, 5)
        np.testing.assert_array_equal(np.diff(a), np.ones(11))  # 12 consecutive frames
        np.testing.assert_allclose(ex["video"].numpy().reshape(12, -1).mean(1), 10 * a % 250, atol=1.0)
        starts.add(int(a[0]) % 3)
    assert len(starts) > 1  # windows start at different frames
    first = [ex["actions"].numpy() for ex in rp.train_dataset(push_dir, seed=0).take(5)]
    again = [ex["actions"].numpy() for ex in rp.train_dataset(push_dir, seed=0).take(5)]
    np.testing.assert_array_equal(first, again)


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """6 train files (plus validation) of 5 records; record s of file k has actions offset 100 * k + 10 * s."""
    d = tmp_path_factory.mktemp("push_many")
    n_files = 7  # the last is validation
    for k in range(n_files):
        seqs = [_sequence(20, h=16, w=16, offset=100 * k + 10 * s) for s in range(5)]
        _write(str(d / "push_train" / f"push_train.tfrecord-{k:05d}-of-{n_files:05d}"), seqs)
    return str(d)


def _records(ds, n):
    """(file, record) of each of the first n examples (the window starts 0..8 frames into the record)."""
    out = []
    for ex in ds.take(n):
        offset = int(ex["actions"].numpy()[0, 0]) // 10 * 10
        out.append((offset // 100, offset % 100 // 10))
    return out


def test_each_epoch_is_a_permutation_that_mixes_files(many_files):
    records = _records(rp.train_dataset(many_files, seed=3, sequence_length=20), 60)
    epochs = [records[:30], records[30:]]
    for epoch in epochs:
        # Every record of the 6 train files exactly once per epoch.
        assert sorted(epoch) == [(k, s) for k in range(6) for s in range(5)]
    assert epochs[0] != epochs[1]  # a new order every epoch
    switches = sum(a[0] != b[0] for a, b in zip(epochs[0], epochs[0][1:], strict=False))
    assert switches >= 15  # files are mixed (reading file by file would switch 5 times)
    other = _records(rp.train_dataset(many_files, seed=4, sequence_length=20), 30)
    assert other != epochs[0]


def test_input_pipelines_read_disjoint_files(many_files):
    for i in range(3):
        records = _records(rp.train_dataset(many_files, seed=0, shard_index=i, num_shards=3, sequence_length=20), 20)
        files = {k for k, _ in records}
        assert files == {i, i + 3}  # files i, i + 3 of the 6 train files, nothing else
    with pytest.raises(ValueError, match="need at least 7 files"):
        rp.train_dataset(many_files, seed=0, shard_index=6, num_shards=7)


def test_resume_at_any_position_is_exact_and_reads_only_what_it_yields(many_files, monkeypatch):
    full = [
        {k: v.numpy() for k, v in ex.items()}
        for ex in rp.train_dataset(many_files, seed=1, shard_index=1, num_shards=2, sequence_length=20).take(40)
    ]
    for start in (0, 2, 26, 30, 58):  # global positions: pipeline 1 of 2 resumes at start // 2
        ds = rp.train_dataset(many_files, seed=1, shard_index=1, num_shards=2, sequence_length=20, start=start)
        for a, b in zip(full[start // 2 :], ds.take(5), strict=False):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k].numpy(), err_msg=f"start {start}, {k}")
    reads = []
    real = tfr.RecordIndex.read
    monkeypatch.setattr(tfr.RecordIndex, "read", lambda self, k: reads.append(k) or real(self, k))
    far = rp.train_dataset(many_files, seed=1, start=10**12, sequence_length=20)
    assert len(list(far.take(3))) == 3
    # Resuming a trillion sequences in reads the records it yields (plus what the prefetching maps ran ahead).
    assert 3 <= len(reads) <= 64


def test_record_index_reads_records_and_names_truncated_files(many_files, tmp_path):
    files = rp.split_files(many_files, "train")
    index = tfr.RecordIndex(files)
    assert len(index) == 30
    expected = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    assert [index.read(k) for k in range(len(index))] == expected
    data = open(files[0], "rb").read()
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(tfr.DataError, match=r"cut.tfrecord: the record at byte \d+ claims \d+ bytes"):
        tfr.RecordIndex([str(cut)])


def test_eval_sequences_keep_states_of_context_only(push_dir):
    ex = next(iter(rp.eval_dataset(push_dir, "test_novel")))
    assert ex["video"].shape == (20, 64, 64, 3) and ex["actions"].shape == (20, 5) and ex["states"].shape == (2, 5)


def _bad_file(tmp_path, name, record):
    path = str(tmp_path / name)
    with tf.io.TFRecordWriter(path) as w:
        w.write(rp.encode_push_example(*_sequence(20)))
        w.write(record)
    return path


def _read_all(path, **kw):
    return list(rp.iterate(rp.read(None, None, files=[path], **kw), [path], **kw))


def _example(features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _features(frames, actions, states):
    return dict(tf.train.Example.FromString(rp.encode_push_example(frames, actions, states)).features.feature)


def test_missing_feature_names_file_and_feature(tmp_path):
    feats = _features(*_sequence(20))
    del feats["move/7/endeffector/vec_pitch_yaw"]
    path = _bad_file(tmp_path, "missing", _example(feats))
    with pytest.raises(tfr.DataError, match=r"missing: feature move/7/endeffector/vec_pitch_yaw: missing"):
        _read_all(path)


def test_short_sequence(tmp_path):
    path = _bad_file(tmp_path, "short", rp.encode_push_example(*_sequence(12)))
    with pytest.raises(tfr.DataError, match="short: feature move/12/image/encoded: missing"):
        _read_all(path)


def test_undecodable_image_bytes(tmp_path):
    feats = _features(*_sequence(20))
    feats["move/3/image/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"not an image"]))
    path = _bad_file(tmp_path, "garbage", _example(feats))
    with pytest.raises(tfr.DataError, match="garbage: feature move/3/image/encoded: not JPEG"):
        _read_all(path)
    # JPEG magic bytes followed by a corrupt body: the decoder's own error, attributed to the file.
    feats["move/3/image/encoded"] = tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[b"\xff\xd8\xff" + b"\0" * 50])
    )
    path = _bad_file(tmp_path, "corrupt_jpeg", _example(feats))
    with pytest.raises(tfr.DataError, match="corrupt_jpeg: bad record"):
        _read_all(path)


def test_wrong_image_size(tmp_path):
    path = _bad_file(tmp_path, "small", rp.encode_push_example(*_sequence(20)))
    with pytest.raises(tfr.DataError, match=r"small: feature move/0/image/encoded: image is not \(512, 640\)"):
        _read_all(path, image_shape=rp.ORIGINAL_SHAPE)


def test_image_size_check_names_the_first_wrong_frame_and_passes_right_ones(tmp_path):
    frames, actions, states = _sequence(20)  # 48 x 60 frames
    feats = _features(frames, actions, states)
    for k in (7, 12):  # two frames transposed (60 x 48): the first of them is named
        jpeg = tf.io.encode_jpeg(np.ascontiguousarray(frames[k].transpose(1, 0, 2))).numpy()
        feats[rp.IMAGE_KEY.format(k)] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))
    path = _bad_file(tmp_path, "turned", _example(feats))
    with pytest.raises(tfr.DataError, match=r"turned: feature move/7/image/encoded: image is not \(48, 60\)"):
        _read_all(path, image_shape=(48, 60))
    good = str(tmp_path / "good")
    with tf.io.TFRecordWriter(good) as w:
        w.write(rp.encode_push_example(frames, actions, states))
    assert len(_read_all(good, image_shape=(48, 60))) == 1
    with pytest.raises(tfr.DataError, match=r"feature move/0/image/encoded: image is not \(60, 48\)"):
        _read_all(good, image_shape=(60, 48))  # height and width are not interchangeable


def test_nan_action(tmp_path):
    frames, actions, states = _sequence(20)
    actions[5, 2] = np.nan
    path = _bad_file(tmp_path, "nan", rp.encode_push_example(frames, actions, states))
    with pytest.raises(tfr.DataError, match="nan: feature move/5/commanded_pose/vec_pitch_yaw: NaN"):
        _read_all(path)


def test_truncated_file(tmp_path):
    path = _bad_file(tmp_path, "whole", rp.encode_push_example(*_sequence(20)))
    data = open(path, "rb").read()
    trunc = str(tmp_path / "truncated")
    open(trunc, "wb").write(data[: len(data) - 1000])
    with pytest.raises(tfr.DataError, match="truncated: truncated or corrupted record"):
        _read_all(trunc)


def test_skip_bad_drops_and_counts(tmp_path):
    feats = _features(*_sequence(20))
    del feats["move/0/image/encoded"]
    path = _bad_file(tmp_path, "one_bad", _example(feats))
    counter = tfr.SkipCounter()
    kept = list(rp.read(None, None, files=[path], skip_bad=True, counter=counter))
    assert len(kept) == 1 and counter.count == 1
    assert kept[0]["video"].shape == (20, 64, 64, 3)


def test_encoder_rejects_bad_arrays():
    frames, actions, states = _sequence(5)
    with pytest.raises(tfr.DataError, match=r"actions must be \[T=5, 5\]"):
        rp.encode_push_example(frames, actions[:4], states)
    with pytest.raises(tfr.DataError, match="uint8"):
        rp.encode_push_example(frames.astype(np.float32), actions, states)


def test_pipelines_name_the_split_directory_they_miss(tmp_path):
    """Evaluating a test split needs only its directory; a missing one is named, with how to make it."""
    import vpn_tf
    from datasets import pipelines

    (tmp_path / "push_testseen").mkdir()
    config = vpn_tf.get_config("cpu_pushing_sim", data_dir=str(tmp_path))
    with pytest.raises(tfr.DataError, match="No record files in .*push_testseen"):  # past the check, to the reader
        pipelines.eval_dataset(config, "test_seen", 2)
    with pytest.raises(
        ValueError, match=r"has no push_testnovel/ directory \(split 'test_novel'\).*--split test_novel"
    ):
        pipelines.eval_dataset(config, "test_novel", 2)
    with pytest.raises(ValueError, match=r"has no push_val/ or push_train/ directory \(split 'validation'\)"):
        pipelines.eval_dataset(config, "validation", 2)
    with pytest.raises(ValueError, match=r"has no push_train/ directory \(split 'train'\)"):
        pipelines.train_dataset(config, seed=0, start=0)
    with pytest.raises(ValueError, match=r"data_dir=\(unset\)"):
        pipelines.eval_dataset(config.replace(data_dir=""), "test_seen", 2)


@pytest.mark.large  # subprocesses
def test_cli_converts_robot_pushing(tmp_path):
    from datasets import robot_pushing as rp
    from datasets import tfrecord as tfr

    src = tmp_path / "push"
    _write(str(src / "push_testseen" / "push_testseen.tfrecord-00000-of-00001"), [_sequence(20), _sequence(20, 1)])
    rp.main(["--src", str(src), "--split", "test_seen", "--out", str(tmp_path / "out")])
    files = tfr.list_files(str(tmp_path / "out" / "*.gz"))
    got = list(tfr.read_videos(files, action_dim=5, state_dim=5, frame_shape=(64, 64, 3)))
    ref = list(rp.read(str(src), "test_seen"))
    assert len(got) == 2
    np.testing.assert_array_equal(got[1]["video"].numpy(), ref[1]["video"].numpy())
