"""The command-line programs: `train`, `evaluate`, `sample` and `export`, each a `main(argv=None)`.

They run as the repository's scripts (`python train.py`, thin wrappers) and as the commands `pip install .`
installs (`vpn-train`, `vpn-evaluate`, `vpn-sample`, `vpn-export`; pyproject.toml). Their data pipelines come from
`data_module`: the checkout's `datasets/` folder when vpn_tf runs from a checkout, otherwise the copy of it that
`pip install .` installs as `vpn_tf.datasets` (not as a top-level `datasets`, which would shadow Hugging Face's).
"""

from __future__ import annotations

import importlib
import os
import sys

# The repository checkout vpn_tf was imported from, when it was (its shipped models live in pretrained/).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def from_checkout() -> bool:
    return os.path.isfile(os.path.join(CHECKOUT, "datasets", "pipelines.py"))


def data_module(name: str):
    """`datasets.NAME` of the checkout, or of the installed copy `vpn_tf.datasets`."""
    if from_checkout():
        if not sys.path or sys.path[0] != CHECKOUT:
            sys.path.insert(0, CHECKOUT)  # our `datasets/` first, before Hugging Face's
        loaded = sys.modules.get("datasets")
        ours = os.path.join(CHECKOUT, "datasets", "__init__.py")
        if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") != ours:
            raise ImportError(
                f"another `datasets` package is already imported ({getattr(loaded, '__file__', loaded)}); the "
                f"commands need this checkout's datasets/ ({ours}): import vpn_tf's commands before it"
            )
        return importlib.import_module(f"datasets.{name}")
    return importlib.import_module(f"vpn_tf.datasets.{name}")


def shipped(name: str) -> str:
    """The path of a shipped model, pretrained/NAME of the checkout (the shipped models are not part of the installed
    package: installed, the path does not exist and the commands say so)."""
    if from_checkout():
        return os.path.join(CHECKOUT, "pretrained", name)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained", name)


def quiet_tensorflow() -> None:
    """Hides TensorFlow's INFO and WARNING lines (set before TensorFlow is imported), except when a GPU was asked
    for: then its "Cannot dlopen some GPU libraries" warning is the message that explains a missing GPU."""
    if "--require_gpu" not in sys.argv:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def workdir_or_shipped(workdir: str | None, name: str) -> str:
    """`workdir`, or the shipped model pretrained/NAME, saying so (a run of train.py is not picked up silently)."""
    if workdir:
        return workdir
    path = shipped(name)
    if not os.path.isdir(path):
        raise SystemExit(
            f"error: no --workdir given, and the shipped model pretrained/{name} is not here (the shipped models come "
            "with the repository checkout); pass --workdir DIR, a train.py working directory"
        )
    # train.py's default working directory: a run there is the one a user who just trained most likely means.
    own = os.path.join("workdirs", "cpu_moving_mnist")
    hint = (
        f"your train.py run in {own} is not it: pass --workdir {own}"
        if os.path.isdir(os.path.join(own, "checkpoints"))
        else "pass --workdir DIR for a train.py run"
    )
    print(f"no --workdir given: using the shipped model pretrained/{name} ({hint})", file=sys.stderr)
    return path


def restore(workdir: str, checkpoint: str | None = None):
    """(config, model) from `workdir`'s latest or the given checkpoint, printing which model and checkpoint."""
    from vpn_tf import training

    path = checkpoint or training.latest_checkpoint(workdir)
    config, model = training.restore_model(workdir, path)
    print(f"loaded {config.name} from {path}", file=sys.stderr)
    return config, model


def resolve_split(config, split: str | None) -> str:
    """`split`, or the dataset's test split; an unknown split is an error naming the dataset's choices."""
    pipelines = data_module("pipelines")

    if split is None:
        return pipelines.default_split(config)
    held_out = [s for s in pipelines.splits(config) if s != "train"]
    if split not in held_out:
        raise SystemExit(
            f"error: --split {split!r} is not a held-out split of dataset {config.dataset!r}. Choices: "
            f"{', '.join(held_out)}"
        )
    return split
