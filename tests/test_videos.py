"""Your own videos: the converter (`python -m datasets.videos`) and `dataset="videos"` reading what it wrote."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasets import pipelines, videos
from datasets.tfrecord import DataError
from tests.scripts import ENV, ROOT, run_command, run_script
from vpn_tf.presets import get_config

TINY = dict(
    hidden=4,
    encoder_blocks=1,
    decoder_blocks=1,
    encoder_dilations=(1,),
    lstm_channels=4,
    top_channels=6,
    first_kernel_size=3,
    batch_size=2,
)


def _clips(n=5, t=9, h=6, w=10, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, c), dtype=np.uint8)


def _save_png_frames(folder, frames):
    from PIL import Image

    os.makedirs(folder)
    for k, f in enumerate(frames):  # names whose plain sort order is not the frame order
        Image.fromarray(f if f.shape[-1] == 3 else f[..., 0]).save(os.path.join(folder, f"frame{k}.png"))


def _snapshot(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}


def test_npy_round_trip_with_actions_metadata_and_order(tmp_path):
    clips = _clips()
    actions = np.random.default_rng(1).normal(size=(5, 9, 2)).astype(np.float32)
    np.save(tmp_path / "clips.npy", clips)
    np.save(tmp_path / "actions.npy", actions)
    meta = videos.convert(
        [str(tmp_path / "clips.npy")], str(tmp_path / "d"), "test", actions=str(tmp_path / "actions.npy"), num_shards=3
    )
    assert {k: meta[k] for k in ("height", "width", "channels", "frames", "max_frames", "count", "action_dim")} == {
        "height": 6,
        "width": 10,
        "channels": 3,
        "frames": 9,
        "max_frames": 9,
        "count": 5,
        "action_dim": 2,
    }
    assert meta["files"] == [f"test-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert meta == json.load(open(tmp_path / "d" / "test.json"))
    read = list(videos.eval_dataset(str(tmp_path / "d"), "test", 9, action_dim=2))
    # Sequence n went to shard n % 3; reading gives the conversion's order back.
    assert len(read) == 5
    for n, ex in enumerate(read):
        np.testing.assert_array_equal(ex["video"].numpy(), clips[n])
        np.testing.assert_array_equal(ex["actions"].numpy(), actions[n])


def test_tnhw_layout_reads_time_major_arrays_like_mnist_test_seq(tmp_path):
    clips = _clips(c=1)
    np.save(tmp_path / "tn.npy", np.swapaxes(clips[..., 0], 0, 1))  # [T, N, H, W]
    videos.convert([str(tmp_path / "tn.npy")], str(tmp_path / "d"), "test", layout="TNHW", progress=False)
    read = [ex["video"].numpy() for ex in videos.eval_dataset(str(tmp_path / "d"), "test", 9)]
    np.testing.assert_array_equal(np.stack(read), clips)
    # Read in the default layout, the same array means 9 videos of 5 frames: a different dataset (negative control).
    videos.convert([str(tmp_path / "tn.npy")], str(tmp_path / "e"), "test", progress=False)
    assert videos.read_metadata(str(tmp_path / "e"), "test")["count"] == 9


def test_npz_key_and_float_pixels(tmp_path):
    clips = _clips(c=1)
    np.savez(tmp_path / "two.npz", a=clips / 255.0, b=clips)
    with pytest.raises(DataError, match=r"two\.npz: holds arrays \['a', 'b'\]; choose one with --key"):
        videos.convert([str(tmp_path / "two.npz")], str(tmp_path / "d"), "train", progress=False)
    videos.convert([str(tmp_path / "two.npz")], str(tmp_path / "d"), "train", key="a", progress=False)
    read = [ex["video"].numpy() for ex in videos.eval_dataset(str(tmp_path / "d"), "train", 9)]
    np.testing.assert_array_equal(np.stack(read), clips)


def test_gif_and_frame_folders_and_natural_frame_order(tmp_path):
    from vpn_tf import visualize

    clips = _clips(n=2, t=12, c=1)
    clips[0, 5] = clips[0, 4]  # a GIF writer merges these two into one frame shown twice as long
    src = tmp_path / "src"
    os.makedirs(src)
    visualize.save_gif(str(src / "a.gif"), clips[0])
    _save_png_frames(str(src / "b"), clips[1])  # frame10.png must come after frame9.png
    from PIL import Image

    with Image.open(src / "a.gif") as gif:
        assert gif.n_frames == 11  # the merge happened: reading must expand it again
    meta = videos.convert([str(src)], str(tmp_path / "d"), "train", progress=False)
    assert (meta["channels"], meta["count"], meta["frames"]) == (1, 2, 12)  # grey RGB frames stored as grey
    read = [ex["video"].numpy() for ex in videos.eval_dataset(str(tmp_path / "d"), "train", 12)]
    np.testing.assert_array_equal(read[0], clips[0])
    np.testing.assert_array_equal(read[1], clips[1])


@pytest.mark.parametrize("suffix, codec", [(".mp4", "libx264"), (".webm", "libvpx-vp9")])
def test_mp4_and_webm_files(tmp_path, suffix, codec):
    av = pytest.importorskip("av")
    t, h, w = 10, 16, 24
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(x * 10 + k * 8) % 256, y * 15, np.full_like(x, 128)], -1) for k in range(t)])
    frames = frames.astype(np.uint8)
    path = str(tmp_path / f"clip{suffix}")
    with av.open(path, "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    meta = videos.convert([path], str(tmp_path / "d"), "train", frames=5, progress=False)
    assert (meta["count"], meta["frames"], meta["height"], meta["width"], meta["channels"]) == (2, 5, h, w, 3)
    read = np.concatenate([ex["video"].numpy() for ex in videos.eval_dataset(str(tmp_path / "d"), "train", 5)])
    assert np.abs(read.astype(int) - frames.astype(int)).mean() < 12  # lossy codecs, same picture


def test_frames_cuts_clips_and_a_short_clip_is_named(tmp_path):
    np.save(tmp_path / "long.npy", _clips(n=2, t=9))
    meta = videos.convert([str(tmp_path / "long.npy")], str(tmp_path / "d"), "train", frames=4, progress=False)
    assert (meta["count"], meta["frames"]) == (4, 4)  # 9 frames -> 2 sequences of 4, one frame dropped, per clip
    first = next(iter(videos.eval_dataset(str(tmp_path / "d"), "train", 4)))["video"].numpy()
    np.testing.assert_array_equal(first, _clips(n=2, t=9)[0, :4])
    np.save(tmp_path / "short.npy", _clips(n=1, t=3))
    with pytest.raises(DataError, match=r"short\.npy.*3 frames, fewer than --frames 4"):
        videos.convert([str(tmp_path / "short.npy")], str(tmp_path / "e"), "train", frames=4, progress=False)


def test_mixed_frame_sizes_need_a_resize_or_crop(tmp_path):
    src = tmp_path / "src"
    os.makedirs(src)
    _save_png_frames(str(src / "a"), _clips(n=1, t=3, h=6, w=10)[0])
    _save_png_frames(str(src / "b"), _clips(n=1, t=3, h=12, w=12)[0])
    with pytest.raises(DataError, match=r"b: frames of 12x12, but .*a has 6x10; pass --height and --width"):
        videos.convert([str(src)], str(tmp_path / "d"), "train", progress=False)
    for fit in ("resize", "crop"):
        meta = videos.convert([str(src)], str(tmp_path / fit), "train", height=4, width=8, fit=fit, progress=False)
        assert (meta["height"], meta["width"], meta["count"]) == (4, 8, 2)
    flat = np.full((1, 12, 12, 3), 200, np.uint8)  # a constant frame stays constant whichever way it is fitted
    assert np.all(videos.fit_frames(flat, 4, 8, "crop") == 200) and videos.fit_frames(flat, 4, 8, "crop").shape == (
        1,
        4,
        8,
        3,
    )
    bars = np.zeros((1, 12, 12, 1), np.uint8)
    bars[:, :3] = 255  # the top quarter is white: cropping to a 1:2 window keeps the middle rows only
    assert videos.fit_frames(bars, 4, 8, "crop").max() == 0 and videos.fit_frames(bars, 4, 8, "resize").max() > 0


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 4, 6, 6), np.float32) + 2.0, r"float values must lie in \[0, 1\].*found 2 \.\. 2"),
        (np.full((2, 4, 6, 6), -1, np.int16), r"int16 values must lie in \[0, 255\]; found -1 \.\. -1"),
        (np.zeros((2, 4, 6, 6), np.complex64), r"dtype complex64 is not pixels"),
        (np.zeros((4, 6, 6), np.uint8), r"shape \(4, 6, 6\) is not NTHW or NTHWC"),
        (np.full((2, 4, 6, 6, 1), np.nan, np.float32), r"NaN or Inf"),
    ],
)
def test_bad_arrays_are_named_and_nothing_is_written(tmp_path, array, message):
    good = tmp_path / "good.npy"
    np.save(good, _clips(n=2, t=4, h=6, w=6, c=1))
    out = tmp_path / "d"
    videos.convert([str(good)], str(out), "train", progress=False)
    before = _snapshot(out)
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=r"bad\.npy.*" + message):
        videos.convert([str(good), str(tmp_path / "bad.npy")], str(out), "train", progress=False)
    assert _snapshot(out) == before  # the earlier split, byte for byte, and no temporary folder left


@pytest.mark.parametrize(
    "name, data", [("clip.mp4", b"not a video"), ("clip.gif", b"GIF89a garbage"), ("x.npy", b"\x93NUMPY")]
)
def test_unreadable_files_are_named(tmp_path, name, data):
    pytest.importorskip("av")
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=rf"{name}: not a readable"):
        videos.convert([str(tmp_path / name)], str(tmp_path / "d"), "train", progress=False)
    assert not os.path.exists(tmp_path / "d") or os.listdir(tmp_path / "d") == []


def test_action_files_of_the_wrong_length_are_named(tmp_path):
    np.save(tmp_path / "clips.npy", _clips(n=2, t=5))
    np.save(tmp_path / "short.npy", np.zeros((2, 4, 3), np.float32))
    with pytest.raises(DataError, match=r"short\.npy \(video 0\): actions must be \[T=5, dim\].*got shape \(4, 3\)"):
        videos.convert([str(tmp_path / "clips.npy")], str(tmp_path / "d"), "train", actions=str(tmp_path / "short.npy"))
    np.save(tmp_path / "few.npy", np.zeros((1, 5, 3), np.float32))
    with pytest.raises(DataError, match=r"few\.npy: actions for 1 videos, but the sources hold more"):
        videos.convert([str(tmp_path / "clips.npy")], str(tmp_path / "d"), "train", actions=str(tmp_path / "few.npy"))
    # Per-clip side files: NAME.npy beside nothing but each other.
    folder = tmp_path / "states"
    os.makedirs(folder)
    np.save(folder / "clips-000000.npy", np.ones((5, 2), np.float32))
    with pytest.raises(DataError, match=r"clips-000001\.npy: missing \(states of"):
        videos.convert([str(tmp_path / "clips.npy")], str(tmp_path / "d"), "train", states=str(folder))
    np.save(folder / "clips-000001.npy", np.ones((5, 2), np.float32))
    meta = videos.convert([str(tmp_path / "clips.npy")], str(tmp_path / "d"), "train", states=str(folder))
    assert meta["state_dim"] == 2


def test_a_colour_clip_after_grey_ones_asks_for_three_channels(tmp_path):
    grey = np.repeat(_clips(n=1, t=3, c=1), 3, axis=-1)
    np.save(tmp_path / "a.npy", grey)
    np.save(tmp_path / "b.npy", _clips(n=1, t=3))
    with pytest.raises(
        DataError, match=r"b\.npy: has colour, but the conversion writes grey frames; pass --channels 3"
    ):
        videos.convert([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], str(tmp_path / "d"), "train")
    meta = videos.convert([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], str(tmp_path / "d"), "train", channels=3)
    assert meta["channels"] == 3


def test_reconverting_a_split_replaces_its_shards(tmp_path):
    np.save(tmp_path / "c.npy", _clips(n=5, t=4))
    videos.convert([str(tmp_path / "c.npy")], str(tmp_path / "d"), "train", num_shards=4, progress=False)
    videos.convert([str(tmp_path / "c.npy")], str(tmp_path / "d"), "train", num_shards=2, progress=False)
    assert sorted(os.listdir(tmp_path / "d")) == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "train.json",
    ]


def test_config_takes_the_frame_shape_from_the_data_unless_given(tmp_path):
    np.save(tmp_path / "c.npy", _clips(n=4, t=9, h=6, w=10, c=1))
    d = str(tmp_path / "d")
    for split in ("train", "validation", "test"):
        videos.convert([str(tmp_path / "c.npy")], d, split, progress=False)
    short = dict(data_dir=d, num_frames=6, eval_num_frames=9)
    config = pipelines.fill_from_data(get_config("videos", **short))
    assert (config.frame_shape, config.output) == ((6, 10, 1), "softmax")
    given = pipelines.fill_from_data(get_config("videos", height=3, width=5, **short), {"height", "width"})
    assert given.frame_shape == (3, 5, 1)
    ex = next(iter(pipelines.eval_dataset(given, "test", 1)))
    assert ex["video"].shape == (9, 3, 5, 1)  # resized to the frames the config asks for
    sigmoid = pipelines.fill_from_data(get_config("videos", output="sigmoid", **short), {"output"})
    assert sigmoid.output == "sigmoid"  # grey data may choose either output
    rgb = get_config("videos", channels=3, **short)  # as if given: the data is grey
    with pytest.raises(DataError, match=r"holds data with channels=1; config 'videos' reads channels=3"):
        next(iter(pipelines.eval_dataset(rgb, "test", 1)))
    long = config.replace(num_frames=10)
    with pytest.raises(DataError, match=r"train\.json: its shortest sequences have 9 frames; the config reads 10"):
        pipelines.train_dataset(long, 0, 0)


def test_training_windows_are_windows_of_the_sequences_and_resume_exactly(tmp_path):
    clips = _clips(n=3, t=9, h=4, w=5, c=1)
    np.save(tmp_path / "c.npy", clips)
    d = str(tmp_path / "d")
    videos.convert([str(tmp_path / "c.npy")], d, "train", num_shards=2, progress=False)
    config = pipelines.fill_from_data(get_config("videos", data_dir=d, num_frames=4, context_frames=2))
    stream = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 3, 0).take(8)]
    for window in stream:
        assert any(np.array_equal(window, clip[s : s + 4]) for clip in clips for s in range(6)), (
            "a training example that is no window of a converted sequence"
        )
    resumed = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 3, 5).take(3)]
    for a, b in zip(stream[5:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    other_seed = [ex["video"].numpy() for ex in pipelines.train_dataset(config, 4, 0).take(8)]
    assert any(not np.array_equal(a, b) for a, b in zip(stream, other_seed, strict=True))


def test_moving_mnist_models_score_a_converted_test_file_as_the_built_in_test_set(tmp_path):
    """The paper's protocol on a user's mnist_test_seq.npy: a converted time-major file of the test set's sequences
    gives the built-in test split's figures exactly (likelihood and lower bound)."""
    from datasets import moving_mnist
    from vpn_tf import build_model, training

    written = moving_mnist.write_videos(str(tmp_path / "mm"), 6, progress=False)
    d = str(tmp_path / "data")
    videos.convert([written["npy"]], d, "test", layout="TNHW", progress=False)
    config = get_config("tiny", eval_num_frames=20, context_frames=10, num_frames=20)
    model = build_model(config)
    built_in = training.evaluate(config, model, pipelines.eval_dataset(config, "test", 6, cache_dir=None))
    converted = config.replace(dataset="videos", data_dir=d)
    mine = training.evaluate(converted, model, pipelines.eval_dataset(converted, "test", 6))
    assert mine["count"] == built_in["count"] == 6
    assert mine["nats_per_frame"] == built_in["nats_per_frame"]
    assert mine["lower_bound"] == built_in["lower_bound"]


def _convert_command(*args):
    cmd = [sys.executable, "-m", "datasets.videos", *[str(a) for a in args]]
    return subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.large  # subprocesses
def test_command_line_errors_name_the_problem(tmp_path):
    out = _convert_command(tmp_path / "missing.npy", "--out", tmp_path / "d", "--split", "train")
    assert out.returncode != 0 and "missing.npy: no such file or folder" in out.stderr
    np.save(tmp_path / "c.npy", _clips(n=2, t=4))
    ok = _convert_command(tmp_path / "c.npy", "--out", tmp_path / "d", "--split", "train")
    assert ok.returncode == 0, ok.stderr
    assert "train: 2 sequences of 4 frames, 6x10x3" in ok.stdout


_TINY_FLAGS = [
    *("--hidden", "4", "--encoder_blocks", "1", "--decoder_blocks", "1", "--encoder_dilations", "1"),
    *("--lstm_channels", "4", "--top_channels", "6", "--first_kernel_size", "3", "--batch_size", "2"),
    *("--num_frames", "5", "--eval_num_frames", "5", "--eval_sequences", "2", "--eval_every", "2"),
    *("--checkpoint_every", "2", "--context_frames", "2"),
]


@pytest.mark.large
def test_own_videos_end_to_end(tmp_path):
    """GIFs of oblong RGB frames -> convert -> train 2 steps -> evaluate -> sample -> export -> a fresh process loads
    the export and samples from a context of the data's shape, the frames the in-process sampler draws."""
    from vpn_tf import training, visualize
    from vpn_tf.sampling import Sampler

    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)  # few colours: a GIF keeps them exactly
    src = tmp_path / "gifs"
    os.makedirs(src)
    for n in range(4):
        visualize.save_gif(str(src / f"clip{n}.gif"), palette[rng.integers(0, 6, (10, 6, 10))])
    data = tmp_path / "data"
    for split in ("train", "validation", "test"):
        done = _convert_command(src, "--out", data, "--split", split, "--frames", "5", "--no_progress")
        assert done.returncode == 0, done.stderr
    assert videos.read_metadata(str(data), "test")["count"] == 8
    workdir = tmp_path / "run"
    common = ["--config", "videos", "--data_dir", data, *_TINY_FLAGS]
    trained = run_script(
        "train.py", *common, "--steps", "2", "--workdir", workdir, "--no_progress", "--monitor_sequences", "2"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "nats_per_dim=" in trained.stdout
    assert json.load(open(workdir / "config.json"))["height"] == 6
    # evaluate.py's and sample.py's mains in this process (their start-up is checked in test_training.py).
    evaluated = run_command("evaluate.py", "--workdir", workdir, "--split", "test", "--json", tmp_path / "e.json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.load(open(tmp_path / "e.json"))
    assert metrics["count"] == 8 and 0 < metrics["nats_per_dim"] < 6  # ln 256 = 5.55 at most for a fresh softmax
    sampled = run_command(
        "sample.py", "--workdir", workdir, "--num_sequences", "2", "--num_samples", "1", "--out", tmp_path / "s"
    )
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert os.path.exists(tmp_path / "s" / "grid.png") and os.path.exists(tmp_path / "s" / "sequence_1.gif")
    export_dir = tmp_path / "export" / "videos" / "1"
    exported = run_script("export.py", "--workdir", workdir, "--export_dir", export_dir)
    assert exported.returncode == 0, exported.stderr[-3000:]

    config, model = training.restore_model(str(workdir))
    test = next(iter(pipelines.eval_dataset(config, "test", 2).batch(2)))["video"].numpy()
    inputs = {
        "sample/context": test[:, :2],
        "sample/seed": np.array([4, 2], np.int32),
        "sample/num_frames": np.array(2, np.int32),
        "log_prob/video": test,
    }
    np.savez(tmp_path / "in.npz", **inputs)
    helper = os.path.join(ROOT, "tests", "helpers", "call_export.py")
    cmd = [sys.executable, helper, str(export_dir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")]
    subprocess.run(cmd, env=ENV, check=True, capture_output=True, timeout=300)
    out = np.load(tmp_path / "out.npz")
    assert out["frames"].shape == (2, 2, 6, 10, 3)
    np.testing.assert_array_equal(out["frames"], Sampler(model).sample(test[:, :2], 2, seed=(4, 2)))


@pytest.mark.large
def test_evaluate_scores_a_converted_mnist_test_file_with_the_shipped_model(tmp_path):
    """`evaluate.py --dataset videos --data_dir DIR` on the test set's first sequences, written time-major as the
    standard mnist_test_seq.npy and converted, prints the built-in test split's figures (and lower bound)."""
    from datasets import moving_mnist

    written = moving_mnist.write_videos(str(tmp_path / "mm"), 8, progress=False)
    done = _convert_command(written["npy"], "--out", tmp_path / "d", "--split", "test", "--layout", "TNHW")
    assert done.returncode == 0, done.stderr
    common = ["--num_sequences", "8", "--batch_size", "8"]
    # The built-in split and the refusal through evaluate.py's main in this process, the converted file through a
    # fresh one (as a user runs it).
    built_in = run_command("evaluate.py", *common, "--json", tmp_path / "a.json")
    assert built_in.returncode == 0, built_in.stderr[-3000:]
    converted = run_script(
        "evaluate.py", *common, "--dataset", "videos", "--data_dir", tmp_path / "d", "--json", tmp_path / "b.json"
    )
    assert converted.returncode == 0, converted.stderr[-3000:]
    a, b = json.load(open(tmp_path / "a.json")), json.load(open(tmp_path / "b.json"))
    assert b["count"] == 8 and "lower_bound" in b
    assert (a["nats_per_frame"], a["lower_bound"]) == (b["nats_per_frame"], b["lower_bound"])
    wrong = run_command("evaluate.py", *common, "--dataset", "videos", "--data_dir", tmp_path / "nowhere")
    assert wrong.returncode != 0 and "is not a folder; convert videos first" in wrong.stderr
