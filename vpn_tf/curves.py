"""Learning curves from a run's TensorBoard logs: read the scalars back and plot runs side by side.

`train.py` writes `train/` (every `log_every` steps: the metric, loss, grad norm, learning rate, throughput and
`wall_minutes`) and `eval/` (every `eval_every` steps: the held-out metric, its standard error, the lower bound).
RESULTS.md's curves are `plot_curves.py` over these; matplotlib is imported only when plotting.
"""

from __future__ import annotations

import os

import numpy as np


def read_scalars(logdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps int64 [N], values float64 [N])} from every event file in `logdir`, sorted by step.

    A step logged twice (a resumed run repeats the steps after its last checkpoint) keeps the later write, which is
    what the resumed run actually did.
    """
    import tensorflow as tf

    if not os.path.isdir(logdir):
        raise FileNotFoundError(f"No TensorBoard log directory {logdir}")
    files = sorted(os.path.join(logdir, f) for f in os.listdir(logdir) if ".tfevents." in f)
    if not files:
        raise FileNotFoundError(f"No event files (*.tfevents.*) in {logdir}")
    by_tag: dict[str, dict[int, tuple[float, float]]] = {}
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    value = float(v.simple_value)
                elif v.HasField("tensor") and not v.tensor.tensor_shape.dim and v.tensor.dtype != tf.string:
                    value = float(tf.make_ndarray(v.tensor))
                else:
                    continue  # images and other non-scalars
                seen = by_tag.setdefault(v.tag, {})
                if event.step not in seen or event.wall_time >= seen[event.step][0]:
                    seen[event.step] = (event.wall_time, value)
    out = {}
    for tag, seen in by_tag.items():
        steps = np.array(sorted(seen), np.int64)
        out[tag] = (steps, np.array([seen[s][1] for s in steps], np.float64))
    return out


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over up to `window` points (the first points average what exists so far)."""
    values = np.asarray(values, np.float64)
    if window <= 1 or len(values) == 0:
        return values
    c = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_runs(
    runs: dict[str, str],
    out: str,
    tag: str = "nats_per_frame",
    x: str = "step",
    bound: float | None = None,
    window: int = 10,
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
) -> None:
    """Two panels, training (smoothed over `window` logged points) and held-out, one line per run.

    Args:
        runs: {label: workdir}; each workdir has train/ and eval/ logs.
        out: PNG path.
        tag: the scalar to plot (nats_per_frame for Moving MNIST, nats_per_dim for pushing).
        x: "step" or "wall_minutes" (minutes of this run's training, from its `wall_minutes` scalar).
        bound: a horizontal reference line (the test set's lower bound).
        ylim: y-axis limits (both panels), e.g. to see the end of training below a high initial loss.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in ("step", "wall_minutes"):
        raise ValueError(f"x must be 'step' or 'wall_minutes', got {x!r}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for label, workdir in runs.items():
        train = read_scalars(os.path.join(workdir, "train"))
        if tag not in train:
            raise ValueError(f"{workdir}/train has no scalar {tag!r}; it has {sorted(train)}")
        evals = read_scalars(os.path.join(workdir, "eval")) if os.path.isdir(os.path.join(workdir, "eval")) else {}
        to_x = _x_mapping(train, x, workdir)
        steps, values = train[tag]
        (line,) = axes[0].plot(to_x(steps), smooth(values, window), label=label)
        if tag in evals:
            e_steps, e_values = evals[tag]
            axes[1].plot(to_x(e_steps), e_values, "o-", color=line.get_color(), label=label)
    for ax, name in zip(axes, ("training (smoothed)", "validation"), strict=True):
        if bound is not None:
            ax.axhline(bound, color="k", linestyle="--", linewidth=1, label=f"lower bound {bound:.1f}")
        ax.set_xlabel("training minutes" if x == "wall_minutes" else "step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0].set_ylabel(tag.replace("_", " "))
    axes[1].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _x_mapping(train, x, workdir):
    if x == "step":
        return lambda steps: steps
    if "wall_minutes" not in train:
        raise ValueError(f"{workdir}/train has no wall_minutes scalar (logged since train.py --max_minutes)")
    w_steps, w_minutes = train["wall_minutes"]
    return lambda steps: np.interp(steps, w_steps, w_minutes)
