"""A training directory: its config files, compatibility checks, and restoring a trained model from it."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from vpn_tf.config import ARCHITECTURE_FIELDS, VPNConfig
from vpn_tf.models.vpn import build_model
from vpn_tf.training.errors import TrainingError
from vpn_tf.training.state import create_train_state

CONFIG_FILE = "config.json"


def check_workdir(workdir: str) -> None:
    """Creates `workdir` and proves it writable, before any training starts."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
            pass
    except OSError as e:
        raise TrainingError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from None


def check_compatible(workdir: str, config: VPNConfig) -> None:
    """Raises if `workdir` holds a run of another architecture (its config.json differs on weight-shaping fields)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path) or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")) is None:
        return
    with open(path) as f:
        saved = VPNConfig.from_dict(json.load(f))
    diff = saved.diff(config, ARCHITECTURE_FIELDS)
    if diff:
        fields = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise TrainingError(f"The checkpoint in {workdir} is from another config ({fields}); use another --workdir")
    if saved.validates_on_binary_frames != config.validates_on_binary_frames:
        # The learning-rate plateau compares validation figures across the resume: binary and grey readings differ
        # by tens of nats/frame, so switching would decay the rate for nothing (or hide a real plateau).
        raise TrainingError(
            f"The run in {workdir} validates on {'binary' if saved.validates_on_binary_frames else 'grey'} frames "
            f"(binarize_inputs={saved.binarize_inputs}); the requested binarize_inputs={config.binarize_inputs} "
            "would switch its validation reading under the learning-rate plateau. Resume with the run's value or "
            "use another --workdir"
        )


def write_config(workdir: str, config: VPNConfig, extra: dict | None = None) -> None:
    """Writes config.json (and run.json) atomically: other workers may be reading the chief's copy."""
    files = {CONFIG_FILE: config.to_json()}
    if extra:
        files["run.json"] = json.dumps(extra, indent=2, sort_keys=True)
    for name, text in files.items():
        path = os.path.join(workdir, name)
        with open(f"{path}.tmp{os.getpid()}", "w") as f:
            f.write(text)
        os.replace(f"{path}.tmp{os.getpid()}", path)


def latest_checkpoint(workdir: str) -> str | None:
    """The path of the latest checkpoint in `workdir` (None when it has none)."""
    return tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))


def load_config(workdir: str) -> VPNConfig:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise TrainingError(f"{workdir} holds no {CONFIG_FILE}: not a vpn_tf training directory")
    with open(path) as f:
        return VPNConfig.from_dict(json.load(f))


def restore_model(workdir: str, checkpoint: str | None = None, mixed_precision: str = "float32"):
    """(config, model) from a training directory's config.json and its latest (or the given) checkpoint.

    The checkpoint is read through the same object structure that wrote it (`TrainState`: model and optimizer).
    Keras 3 layers held in Python lists (the residual blocks) are reachable in TensorFlow's object graph only through
    the optimizer's variable list, so a `tf.train.Checkpoint(model=model)` alone silently leaves them at their
    initial values; every restored weight is then checked against the checkpoint's stored value.
    """
    config = load_config(workdir)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None:
        raise TrainingError(f"No checkpoint in {os.path.join(workdir, 'checkpoints')}")
    run = {}
    if os.path.exists(os.path.join(workdir, "run.json")):
        with open(os.path.join(workdir, "run.json")) as f:
            run = json.load(f)
    state = create_train_state(config, run.get("mixed_precision", "float32"))
    state.checkpoint().restore(path).expect_partial()
    reader = tf.train.load_checkpoint(path)
    stored = {k for k in reader.get_variable_to_shape_map() if "_trainable_variables/" in k}
    prefix = (
        "optimizer/inner_optimizer" if any(k.startswith("optimizer/inner_optimizer/") for k in stored) else "optimizer"
    )
    for i, v in enumerate(state.model.trainable_variables):
        key = f"{prefix}/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in stored or not np.array_equal(reader.get_tensor(key), v.numpy()):
            raise TrainingError(
                f"{path} does not hold this model's weight {v.path}; is it a vpn_tf checkpoint of {config.name}?"
            )
    if mixed_precision == "float32" or mixed_precision == run.get("mixed_precision", "float32"):
        model = state.model
    else:
        dtype = f"mixed_{mixed_precision}"
        model = build_model(config, dtype=dtype)
        model.set_weights(state.model.get_weights())
    return config, model
