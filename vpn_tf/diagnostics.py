"""How samples compare with the truth: ink, legibility (a digit reader) and tracking, per predicted frame.

Likelihoods score the teacher-forced conditionals; these score what users watch, the sampled continuations.
- `ink_ratio`, `ink_diagnostics`: how much of the truth's ink the samples keep (and where it goes missing).
- `legibility`: the fraction of sampled frames whose digits a `DigitReader` reads right, with standard errors,
  beside the true frames (the reader's ceiling), binarised true frames and chance (shuffled labels).
- `tracking`: whether the ink is where the truth's is (correlation of blurred frames), against the last context frame
  held still: a model that only copies its last frame stays legible but does not move its digits.
- `best_of_ssim`: for any data (simulated pushing, own videos), the structural similarity of K continuations to the
  true frame, best of K and their mean, against the last context frame held still.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vpn_tf.sampling import Sampler
from vpn_tf.stats import mean_and_stderr


def _binarised(frames, rng):
    """uint8 0/255 frames drawn pixel by pixel with P(255) = x / 255 from the numpy Generator `rng`: what a sigmoid
    model's samples look like, so the reference rows that binary samples are compared with."""
    frames = np.asarray(frames)
    return np.where(rng.random(frames.shape) < frames / 255.0, 255, 0).astype(np.uint8)


def ink_ratio(true_frames, sampled_frames):
    """Mean sampled ink over mean true ink per predicted frame (ink: the sum of a frame's pixel intensities).

    Args:
        true_frames, sampled_frames: uint8 `[N, T, H, W, C]` (the same N sequences' future and a continuation).

    Returns:
        float64 `[T]`: 1 where samples keep as much ink as the truth, 0 where they fade to black (RESULTS.md tracks
        it for Moving MNIST, whose continuations lost their digits).
    """
    true_ink = np.asarray(true_frames, np.float64).sum(axis=(2, 3, 4)).mean(axis=0)
    sampled_ink = np.asarray(sampled_frames, np.float64).sum(axis=(2, 3, 4)).mean(axis=0)
    return sampled_ink / true_ink


def ink_diagnostics(model, video, seed=(0, 0), actions=None, states=None) -> dict:
    """Where sampled ink goes missing: ink ratios (sampled or expected ink over true ink) per predicted frame.

    Args:
        model: a VPN or baseline.
        video: uint8 `[N, T, H, W, C]` true sequences; the first `context_frames` are the context.
        seed: sampling seed; frame t uses the key `frame_seed(seed, t)` in every row below.

    Returns a dict of float64 `[T - context_frames]` arrays:
        free_running: one continuation of the true context, each frame conditioned on the earlier samples (what
            `sample.py` shows);
        one_step: frame t sampled given the true frames before it (no sampled frame fed back);
        one_step_binarised_context: the same, given true frames binarised to 0/255 (Bernoulli with p = x / 255,
            numpy seeded by `seed`), i.e. frames like the sampler's own; for sigmoid models only;
        teacher_forced_mean: the expected ink under the teacher-forced conditionals (each pixel's mean given the
            true frames and the true pixels before it), no sampling at all.
    A gap between teacher_forced_mean (~1) and one_step says the model's own draws within a frame lose ink; between
    one_step and one_step_binarised_context, that binary frames fed back as context hurt; free_running compounds
    the per-frame loss over frames.
    """
    from vpn_tf import distributions

    c = model.config
    video = np.asarray(video)
    n_ctx, total = c.context_frames, video.shape[1]
    sampler = Sampler(model)
    out = {}
    free = sampler.sample(video[:, :n_ctx], total - n_ctx, seed, actions=actions, states=states)
    out["free_running"] = ink_ratio(video[:, n_ctx:], free)
    rng = np.random.default_rng(np.asarray(seed, np.int64))
    variants = {"one_step": video}
    if c.output == "sigmoid":
        variants["one_step_binarised_context"] = _binarised(video, rng)
    for name, source in variants.items():
        ratios = []
        for t in range(n_ctx, total):  # `sample` keys frame t by frame_seed(seed, t): the free-running noise
            step_actions = None if actions is None else actions[:, : t + 1]
            frame = sampler.sample(source[:, :t], 1, seed, actions=step_actions, states=states)
            ratios.append(ink_ratio(video[:, t : t + 1], frame)[0])
        out[name] = np.array(ratios)
    kw = {k: tf.constant(v) for k, v in (("actions", actions), ("states", states)) if v is not None}
    logits = model.conditional_logits(video=tf.constant(video), **kw)
    mean = distributions.mean(logits, c.output).numpy()  # [N, T - ctx, H, W, C] on the 0..255 scale
    out["teacher_forced_mean"] = mean.sum(axis=(2, 3, 4)).mean(0) / video[:, n_ctx:].astype(np.float64).sum(
        axis=(2, 3, 4)
    ).mean(0)
    return out


def legibility(reader, true_future, sampled, classes, seed: int = 0) -> dict:
    """Per predicted frame, the fraction of frames read right (`DigitReader.read_right`) with standard errors.

    Args:
        reader: a `vpn_tf.models.digit_reader.DigitReader`.
        true_future: uint8 `[N, T, 64, 64, 1]`, the true frames after the context.
        sampled: uint8 `[N, T, 64, 64, 1]`, one continuation of each sequence (or None: references only).
        classes: int `[N, D]`, the classes of each sequence's digits.
        seed: the draws of the binarised truth.

    Returns:
        {row: {"mean": [T], "stderr": [T]}} for rows "samples" (if given), "true_frames", "binarised_true_frames"
        and "chance" (true frames read against another sequence's classes).
    """
    rng = np.random.default_rng(seed)
    true_future = np.asarray(true_future)
    binary = _binarised(true_future, rng)
    # Each sequence read against the next one's classes: never its own labels, though classes may coincide, which
    # is what chance means here.
    shuffled = np.roll(np.asarray(classes), 1, axis=0)
    rows = {"true_frames": (true_future, classes), "binarised_true_frames": (binary, classes)}
    rows["chance"] = (true_future, shuffled)
    if sampled is not None:
        rows = {"samples": (np.asarray(sampled), classes), **rows}
    out = {}
    for name, (frames, labels) in rows.items():
        mean, stderr = mean_and_stderr(reader.read_right(frames, labels).astype(np.float64), axis=0)
        out[name] = {"mean": mean.tolist(), "stderr": np.atleast_1d(stderr).tolist()}
    return out


def _blur(frames, size: int = 7):
    """Two passes of a `size` x `size` box filter over float frames `[N, H, W, C]` (mirrored borders: a constant
    frame stays constant)."""
    x = tf.constant(np.asarray(frames, np.float32))
    kernel = tf.ones([size, size, x.shape[-1], 1]) / float(size * size)
    r = size // 2
    for _ in range(2):
        x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
        x = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")
    return x.numpy()


def _correlation(a, b):
    """Per frame, the correlation of two frames' pixels (the cosine of the frames less their means): 1 for the same
    pattern, 0 for a featureless (constant) frame or an unrelated one."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 1e-9, (a * b).sum(axis=1) / np.maximum(norms, 1e-12), 0.0)


def tracking(last_context, true_future, sampled) -> dict:
    """Per predicted frame, the mean correlation between blurred sampled and blurred true frames, and the same for
    the last context frame held still, with standard errors over the sequences. A correlation (not a plain cosine of
    the non-negative frames) so that diffuse ink or noise, which resembles any frame a little, scores 0.

    Samples that move their digits as the truth does score above "held_still" once the digits have moved.

    Args:
        last_context: uint8 `[N, H, W, C]`, the last given frame.
        true_future, sampled: uint8 `[N, T, H, W, C]`.

    Returns:
        {"samples": {"mean": [T], "stderr": [T]}, "held_still": {...}}.
    """
    true_future, sampled = np.asarray(true_future), np.asarray(sampled)
    if true_future.shape != sampled.shape or np.asarray(last_context).shape != true_future[:, 0].shape:
        raise ValueError(
            f"tracking needs last_context [N, H, W, C] and true_future, sampled [N, T, H, W, C] alike. Received "
            f"{np.asarray(last_context).shape}, {true_future.shape}, {sampled.shape}"
        )
    still = _blur(last_context)
    rows = {"samples": [], "held_still": []}
    for t in range(true_future.shape[1]):
        truth = _blur(true_future[:, t])
        rows["samples"].append(_correlation(_blur(sampled[:, t]), truth))
        rows["held_still"].append(_correlation(still, truth))
    out = {}
    for name, values in rows.items():
        mean, stderr = mean_and_stderr(np.stack(values, axis=1), axis=0)
        out[name] = {"mean": mean.tolist(), "stderr": np.atleast_1d(stderr).tolist()}
    return out


def ssim(frames, true_frames) -> np.ndarray:
    """Per frame, the structural similarity (SSIM; Wang et al. 2004) of uint8 frames `[N, H, W, C]` to the true ones:
    `tf.image.ssim` with its 11 x 11 Gaussian window (sigma 1.5), narrowed to the frame for frames under 11 pixels,
    on the 0..255 scale; colour frames average their channels. 1 for the same frame. Returns float64 `[N]`."""
    frames, true_frames = np.asarray(frames), np.asarray(true_frames)
    if frames.dtype != np.uint8 or true_frames.dtype != np.uint8:
        # Float frames in 0..1 would be scored on the 0..255 scale as near-black: refuse rather than mislead.
        raise ValueError(f"ssim needs uint8 frames (0..255). Received {frames.dtype} and {true_frames.dtype}")
    a = tf.constant(frames, tf.float32)
    b = tf.constant(true_frames, tf.float32)
    if a.shape != b.shape or a.shape.rank != 4:
        raise ValueError(f"ssim needs two uint8 [N, H, W, C] arrays alike. Received {a.shape} and {b.shape}")
    size = min(11, int(a.shape[1]), int(a.shape[2]))
    return tf.image.ssim(a, b, max_val=255.0, filter_size=size).numpy().astype(np.float64)


def _scores(samples, truth) -> np.ndarray:
    """SSIM `[K, N, T]` of each of K continuations `[K, N, T, H, W, C]` to the truth `[N, T, H, W, C]`, one
    continuation at a time: `tf.image.ssim` keeps several float copies of its input, so K at once would need K times
    the memory for no gain."""
    flat = truth.reshape(-1, *truth.shape[2:])
    return np.stack([ssim(s.reshape(flat.shape), flat).reshape(truth.shape[:2]) for s in samples])


def best_of_ssim(last_context, true_future, samples, binarised_truth=None) -> dict:
    """Per predicted frame, how K continuations follow the truth: the SSIM of the best of the K sampled frames (the
    paper's generative model may draw any of many futures; the best of K asks whether the true one is among them)
    and the mean over the K, beside the last context frame held still, with standard errors over the sequences.

    Args:
        last_context: uint8 `[N, H, W, C]`, the last given frame.
        true_future: uint8 `[N, T, H, W, C]`.
        samples: uint8 `[K, N, T, H, W, C]`, K continuations of each sequence.
        binarised_truth: optional uint8 `[K, N, T, H, W, C]`, K draws of the true future binarised to 0/255 (what a
            perfect sigmoid model samples: its frames are binary, the truth grey, so its SSIM never reaches 1).

    Returns:
        {"best_of_k": {"mean": [T], "stderr": [T]}, "mean_of_k": {...}, "held_still": {...},
        "best_of_k_minus_held_still": {...} (the difference per sequence: paired standard errors)}, and "samples": K.
        With `binarised_truth`, also "binarised_truth_best_of_k" and "binarised_truth_mean_of_k": a reference for a
        model that draws binary frames (what its own true frames score drawn that way; not a bound).
    """
    last, truth, samples = np.asarray(last_context), np.asarray(true_future), np.asarray(samples)
    if samples.ndim != 6 or samples.shape[1:] != truth.shape or last.shape != truth[:, 0].shape:
        raise ValueError(
            f"best_of_ssim needs last_context [N, H, W, C], true_future [N, T, H, W, C] and samples "
            f"[K, N, T, H, W, C] alike. Received {last.shape}, {truth.shape}, {samples.shape}"
        )
    if binarised_truth is not None and np.shape(binarised_truth) != samples.shape:
        raise ValueError(
            f"best_of_ssim needs binarised_truth shaped like samples {samples.shape}. "
            f"Received {np.shape(binarised_truth)}"
        )
    k, n, t = samples.shape[:3]
    scores = _scores(samples, truth)
    still = ssim(np.repeat(last, t, axis=0), truth.reshape(-1, *truth.shape[2:])).reshape(n, t)
    out = {"samples": int(k)}
    rows = {"best_of_k": scores.max(axis=0), "mean_of_k": scores.mean(axis=0), "held_still": still}
    if binarised_truth is not None:
        reference = _scores(np.asarray(binarised_truth), truth)
        rows["binarised_truth_best_of_k"] = reference.max(axis=0)
        rows["binarised_truth_mean_of_k"] = reference.mean(axis=0)
    # Paired per sequence: how hard a sequence is (its share of static background, say) is common to both rows.
    rows["best_of_k_minus_held_still"] = rows["best_of_k"] - still
    for name, values in rows.items():
        mean, stderr = mean_and_stderr(values, axis=0)
        out[name] = {"mean": np.atleast_1d(mean).tolist(), "stderr": np.atleast_1d(stderr).tolist()}
    return out


def ssim_report(model, video, samples: int = 8, seed: int = 0, actions=None, states=None, sampler=None) -> dict:
    """`best_of_ssim` of `samples` continuations of each true context; continuation s draws with seed (seed, s), as
    `sample.py`'s sample s does.

    Args:
        video: uint8 `[N, T, H, W, C]`; the first `context_frames` are the context.
        sampler: a `Sampler` of `model` to reuse (default: a new one).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1. Received: {samples}")
    video = np.asarray(video)
    n_ctx = model.config.context_frames
    sampler = sampler or Sampler(model)
    drawn = np.stack(
        [
            sampler.sample(video[:, :n_ctx], video.shape[1] - n_ctx, (seed, s), actions=actions, states=states)
            for s in range(samples)
        ]
    )
    binarised = None
    if model.config.output == "sigmoid":
        # A sigmoid model draws 0/255 frames against grey truth: K Bernoulli(x / 255) draws of the truth are the
        # reference it could reach (draw s with numpy seed (seed, s)).
        future = video[:, n_ctx:]
        binarised = np.stack([_binarised(future, np.random.default_rng((seed, s))) for s in range(samples)])
    return best_of_ssim(video[:, n_ctx - 1], video[:, n_ctx:], drawn, binarised)


def ssim_lines(report: dict, first_frame: int, sequences: int) -> list[str]:
    """`best_of_ssim`'s rows as printed lines, one column per predicted frame."""
    frames = len(report["held_still"]["mean"])
    header = "  " + " " * 30 + " ".join(f"{'frame ' + str(first_frame + t):>13}" for t in range(frames))
    lines = [f"SSIM with the true frame ({sequences} sequences, {report['samples']} samples each; mean +- se):", header]
    k = report["samples"]
    labels = {
        "best_of_k": f"best of {k}",
        "mean_of_k": f"mean of {k}",
        "held_still": "last context held still",
        "best_of_k_minus_held_still": f"best of {k} - held still",
        "binarised_truth_best_of_k": f"binarised truth, best of {k}",
        "binarised_truth_mean_of_k": f"binarised truth, mean of {k}",
    }
    for name, label in labels.items():
        if name not in report:
            continue
        r = report[name]
        lines.append(
            f"  {label:<30}" + " ".join(f"{m:6.3f}+-{e:5.3f}" for m, e in zip(r["mean"], r["stderr"], strict=True))
        )
    return lines


def sample_report(
    model, video, seed=(0, 0), actions=None, states=None, reader=None, classes=None, sampler=None
) -> dict:
    """One continuation of each true context, scored per predicted frame: {"tracking": ..., "ink_ratio": [T]}, and
    {"legibility": ...} when a digit `reader` and the sequences' digit `classes` are given (Moving MNIST).

    Args:
        video: uint8 `[N, T, H, W, C]`; the first `context_frames` are the context.
        sampler: a `Sampler` of `model` to reuse (default: a new one).
    """
    video = np.asarray(video)
    n_ctx = model.config.context_frames
    sampler = sampler or Sampler(model)
    samples = sampler.sample(video[:, :n_ctx], video.shape[1] - n_ctx, seed, actions=actions, states=states)
    future = video[:, n_ctx:]
    out = {
        "tracking": tracking(video[:, n_ctx - 1], future, samples),
        "ink_ratio": ink_ratio(future, samples).tolist(),
    }
    if reader is not None:
        out["legibility"] = legibility(reader, future, samples, classes)
    return out


def sample_monitor(video, seed=(0, 0), actions=None, states=None, reader=None, classes=None):
    """A `sample_metrics_fn` for `training.train_and_evaluate`: at every evaluation, samples one continuation of the
    given validation sequences and returns TensorBoard scalars: the mean over predicted frames (and the first and
    last frame) of the legibility (with a reader) and of tracking minus the held-still reference.

    Training monitors validation sequences, which are made of MNIST *training* digits like the reader's own training
    frames: the reader may read them more easily than test digits, so compare runs with each other here and report
    `evaluate.py --legibility` on the test split."""

    samplers = {}  # one per model: its compiled frame function is reused at every evaluation

    def fn(model) -> dict:
        sampler = samplers.setdefault(id(model), Sampler(model))
        report = sample_report(model, video, seed, actions, states, reader, classes, sampler)
        out = {}
        track = np.asarray(report["tracking"]["samples"]["mean"]) - np.asarray(report["tracking"]["held_still"]["mean"])
        rows = {"tracking_minus_held_still": track}
        if "legibility" in report:
            rows["read_right"] = np.asarray(report["legibility"]["samples"]["mean"])
        first = model.config.context_frames + 1
        for name, values in rows.items():
            out[f"samples/{name}_mean"] = float(values.mean())
            out[f"samples/{name}_frame{first}"] = float(values[0])
            out[f"samples/{name}_frame{first + len(values) - 1}"] = float(values[-1])
        return out

    return fn


def ink_report(model, video, seed=(0, 0), actions=None, states=None, diagnose: bool = False) -> dict:
    """One continuation of each true context: {"ink_ratio": sampled / true ink per predicted frame}, and with
    `diagnose` also `ink_diagnostics`' rows ("ink_diagnostics": where sampled ink goes missing)."""
    video = np.asarray(video)
    n_ctx = model.config.context_frames
    if diagnose:
        rows = ink_diagnostics(model, video, tuple(seed), actions=actions, states=states)
        return {
            "ink_ratio": [round(float(r), 4) for r in rows["free_running"]],
            "ink_diagnostics": {k: [round(float(r), 4) for r in v] for k, v in rows.items()},
        }
    samples = Sampler(model).sample(
        video[:, :n_ctx], video.shape[1] - n_ctx, tuple(seed), actions=actions, states=states
    )
    return {"ink_ratio": [round(float(r), 4) for r in ink_ratio(video[:, n_ctx:], samples)]}


def ink_lines(report: dict, first_frame: int, sequences: int) -> list[str]:
    """`ink_report` as printed lines."""
    frames = ", ".join(f"{first_frame + t}: {r:.2f}" for t, r in enumerate(report["ink_ratio"]))
    lines = [f"sampled / true ink per predicted frame ({sequences} sequences, one sample each): {frames}"]
    for name, values in report.get("ink_diagnostics", {}).items():
        lines.append(f"  {name}: " + ", ".join(f"{v:.2f}" for v in values))
    return lines


def sample_report_lines(report: dict, first_frame: int, sequences: int) -> list[str]:
    """`sample_report`'s legibility (when there) and tracking tables as printed lines, one column per frame."""

    def row(name, r):
        return f"  {name:<24}" + " ".join(f"{m:5.2f}+-{e:4.2f}" for m, e in zip(r["mean"], r["stderr"], strict=True))

    frames = len(report["tracking"]["samples"]["mean"])
    header = "  " + " " * 24 + " ".join(f"{'frame ' + str(first_frame + t):>10}" for t in range(frames))
    lines = []
    if "legibility" in report:
        lines += [f"read right by the digit reader ({sequences} sequences, one sample each; mean +- se):", header]
        lines += [row(name, r) for name, r in report["legibility"].items()]
    lines += ["tracking (correlation of blurred frames with the truth):", header]
    lines += [row(name, r) for name, r in report["tracking"].items()]
    return lines
