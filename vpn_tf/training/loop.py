"""The training loop: `train_and_evaluate`, with periodic evaluation, checkpoints, TensorBoard and exact resume.

The loop is custom rather than `Model.fit` because Keras 3's `fit` fails under MultiWorkerMirroredStrategy
(keras#20585). Data comes in through factories so that this library does not depend on the repository's `datasets/`
folder: `train_dataset_fn(start) -> fn(tf.distribute.InputContext) -> per-replica batched tf.data.Dataset` (from
global stream position `start`) and `eval_dataset_fn(split, num_sequences) -> unbatched tf.data.Dataset`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from vpn_tf import devices, distributions
from vpn_tf.config import VPNConfig
from vpn_tf.training.errors import TrainingError
from vpn_tf.training.evaluation import Evaluator
from vpn_tf.training.loop_utils import log, progress_bar
from vpn_tf.training.objectives import metric_name, model_inputs
from vpn_tf.training.state import create_train_state
from vpn_tf.training.step import make_train_step
from vpn_tf.training.workdir import check_compatible, check_workdir, write_config
from vpn_tf.visualize import video_grid

make_strategy = devices.make_strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def expected_frames(config: VPNConfig, logits):
    """The mean of each predicted dimension's distribution as uint8 (teacher-forced: given the true past pixels)."""
    return tf.cast(tf.round(distributions.mean(logits, config.output)), tf.uint8)


def train_and_evaluate(
    config: VPNConfig,
    workdir: str,
    train_dataset_fn: Callable,
    eval_dataset_fn: Callable | None = None,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit: bool = False,
    mixed_precision: str = "float32",
    deterministic: bool = True,
    log_every: int = 10,
    progress: bool = True,
    sample_fn: Callable | None = None,
    max_minutes: float | None = None,
    initial_loss_scale: float | None = None,
    sample_metrics_fn: Callable | None = None,
) -> dict:
    """Trains `config` in `workdir` up to `config.steps` steps, resuming from the latest checkpoint there.

    Args:
        config: the run's config (written to workdir/config.json).
        workdir: checkpoints/, TensorBoard logs (train/, eval/), config.json.
        train_dataset_fn: `fn(start) -> fn(InputContext) -> dataset` of per-replica batches from stream position
            `start` (see `datasets.pipelines.distributed_train_dataset_fn`).
        eval_dataset_fn: `fn(split, num_sequences) -> unbatched dataset`; evaluation runs on "validation" every
            `config.eval_every` steps and at the end, and drives the learning-rate plateau.
        seed: initialisation and data seed.
        strategy: defaults to `make_strategy()`.
        jit: compile the train step with XLA.
        mixed_precision: "float32", "bfloat16" or "float16" (dynamic loss scaling).
        deterministic: enable deterministic ops (bitwise-reproducible runs and resumes).
        log_every: steps between scalar summaries.
        progress: show a progress bar.
        sample_fn: optional `fn(model, batch) -> uint8 [B, T_pred, H, W, C]` continuations for TensorBoard; without
            it, images show teacher-forced predictions, labelled as such.
        max_minutes: optional wall-clock budget for this invocation: once it is spent, the step in flight finishes,
            then the run evaluates and checkpoints as at `config.steps` and returns (how RESULTS.md compares models
            at equal budgets). TensorBoard's `wall_minutes` records the time spent, so curves can be read against it.
        sample_metrics_fn: optional `fn(model) -> {tag: float}` written to TensorBoard at every evaluation, beside
            the likelihood (e.g. `vpn_tf.diagnostics.sample_monitor`: legibility and tracking of samples).
        initial_loss_scale: float16 only: the dynamic loss scale a new run starts from (a resumed run restores its
            own). Overflowed steps are skipped and counted (`skipped_steps` in TensorBoard and the progress bar).

    Returns:
        The last evaluation's metrics (or the last training metrics if there is no evaluation).
    """
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {max_minutes}")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    # Non-chief workers of a multi-worker run write their (identical) checkpoints apart, as tf.distribute requires.
    own_dir = workdir if chief else os.path.join(workdir, f"worker_{strategy.cluster_resolver.task_id}")
    check_workdir(own_dir)
    check_compatible(workdir, config)
    write_config(own_dir, config, {"seed": seed, "jit": jit, "mixed_precision": mixed_precision})

    with strategy.scope():
        state = create_train_state(config, mixed_precision, initial_loss_scale)
    ckpt = state.checkpoint()
    manager = tf.train.CheckpointManager(ckpt, os.path.join(own_dir, "checkpoints"), max_to_keep=3)
    # Every worker resumes from the chief's latest checkpoint (workdir is on storage all workers share), so workers
    # killed at different moments, e.g. one between its own save and the chief's, restart at the same step.
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest:
        state.restore(latest, ckpt)
        log(f"Resumed from {latest} at step {int(state.step.numpy())}", progress)
    restored_lr = float(state.learning_rate.numpy())
    if state.apply_requested_learning_rate(config.learning_rate):
        # Printed even without progress output: a changed rate is worth one line in every log.
        log(f"learning_rate set to {config.learning_rate:g} (it was {restored_lr:g})", True)

    start = int(state.data_position.numpy())
    dist_ds = strategy.distribute_datasets_from_function(train_dataset_fn(start))
    iterator = iter(dist_ds)
    train_step = make_train_step(config, state, strategy, jit)
    evaluator = Evaluator(config, state.model, strategy)
    writers = {
        k: tf.summary.create_file_writer(os.path.join(own_dir, k) if chief else os.path.join(own_dir, "tb", k))
        for k in ("train", "eval")
    }
    name = metric_name(config)
    step = int(state.step.numpy())
    bar = progress_bar(config.steps, "train", progress, initial=step)
    last = {}
    started = t0 = time.perf_counter()
    budget = None if max_minutes is None else 60.0 * max_minutes
    state.metrics.read()  # start the accumulators from zero
    skipped_total = 0

    loss_scaled = isinstance(state.optimizer, keras.optimizers.LossScaleOptimizer)

    def read_metrics():
        """Waits for the steps in flight; raises (saving nothing) if `nonfinite_problem` finds one."""
        m = state.metrics.read()
        scale = float(state.optimizer.dynamic_scale.numpy()) if loss_scaled else None
        problem = nonfinite_problem(m, scale)
        if problem:
            good = manager.latest_checkpoint or "none yet"
            raise TrainingError(
                f"{problem} in steps {step - m['steps'] + 1}..{step}; stopped without saving. Last good checkpoint: "
                f"{good}"
            )
        return m

    while step < config.steps:
        train_step(next(iterator))  # dispatched; nothing here waits for it
        step += 1
        bar.update(1)
        out_of_time = budget is not None and time.perf_counter() - started >= budget
        final = step == config.steps or out_of_time
        evaluating = eval_dataset_fn is not None and (step % config.eval_every == 0 or final)
        saving = step % config.checkpoint_every == 0 or final
        if step % log_every == 0 or final or evaluating or saving:
            m = read_metrics()
            elapsed = time.perf_counter() - t0
            lr = float(state.learning_rate.numpy())
            postfix = {name: f"{m['metric']:.4g}", "lr": f"{lr:.2g}"}
            if loss_scaled:
                skipped_total += m["skipped"]
                postfix["skipped"] = skipped_total
            bar.set_postfix(postfix)
            last = {name: m["metric"], "loss": m["loss"], "grad_norm": m["grad_norm"]}
            with writers["train"].as_default(step=step):
                # Means over the steps since the previous summary.
                tf.summary.scalar(name, m["metric"])
                tf.summary.scalar("loss_nats_per_dim", m["loss"])
                if math.isfinite(m["grad_norm"]):
                    tf.summary.scalar("grad_norm", m["grad_norm"])
                if loss_scaled:
                    # Overflowed float16 steps (skipped, the scale halved) since the previous summary.
                    tf.summary.scalar("skipped_steps", m["skipped"])
                    tf.summary.scalar("loss_scale", float(state.optimizer.dynamic_scale.numpy()))
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("sequences_per_second", m["steps"] * config.batch_size / max(elapsed, 1e-9))
                tf.summary.scalar("wall_minutes", (time.perf_counter() - started) / 60.0)
            t0 = time.perf_counter()
        if evaluating:
            last = _evaluate_and_log(
                config, state, evaluator, eval_dataset_fn, writers["eval"], step, sample_fn, progress
            )
            if sample_metrics_fn is not None:
                with writers["eval"].as_default(step=step):
                    for tag, value in sample_metrics_fn(state.model).items():
                        tf.summary.scalar(tag, value)
            state.plateau.update(last[name], state.learning_rate)
        if saving:
            manager.save(checkpoint_number=step)
        if out_of_time:
            log(f"Stopped at step {step}: the {max_minutes:g}-minute budget is spent", progress)
            break
    bar.close()
    for w in writers.values():
        w.flush()
    return last


def nonfinite_problem(metrics: dict, loss_scale: float | None) -> str | None:
    """What is wrong with the steps `metrics` summarises (`StepMetrics.read`), or None.

    A non-finite loss is always fatal. Under float16 loss scaling (`loss_scale` is the scale after the steps) an
    overflowed step was skipped (scale halved, weights kept) and is only counted; but once the scale has fallen
    below 1 the gradients are scaled *down*, so a gradient that is still not finite is a real NaN or inf, not an
    overflow: fatal too. Without loss scaling any non-finite gradient is fatal."""
    both = f"Non-finite loss ({metrics['loss']}) or gradient norm ({metrics['grad_norm']})"
    if not math.isfinite(metrics["loss"]):
        return both
    if loss_scale is None:
        return None if math.isfinite(metrics["grad_norm"]) else both
    if metrics["skipped"] and loss_scale < 1.0:
        return (
            f"Non-finite float16 gradients even at loss scale {loss_scale:g} (< 1: not an overflow of the scaled "
            f"loss; {metrics['skipped']} steps skipped)"
        )
    return None


def continuation_sampler(seed: int = 0) -> Callable:
    """A `sample_fn` for `train_and_evaluate`: cached ancestral sampling of the frames after the context (the same
    seed at every evaluation, so TensorBoard shows how one draw evolves with training)."""
    from vpn_tf.sampling import Sampler

    samplers = {}

    def fn(model, batch):
        sampler = samplers.setdefault(id(model), Sampler(model))
        n_ctx = model.config.context_frames
        video = batch["video"].numpy()
        return sampler.sample(
            video[:, :n_ctx],
            video.shape[1] - n_ctx,
            seed=(seed, 0),
            actions=batch["actions"].numpy() if "actions" in batch else None,
            states=batch["states"].numpy() if "states" in batch else None,
        )

    return fn


def _evaluate_and_log(config, state, evaluator, eval_dataset_fn, writer, step, sample_fn, progress):
    name = metric_name(config)
    ds = eval_dataset_fn("validation", config.eval_sequences)
    metrics = evaluator(ds)
    batch = next(iter(ds.batch(min(4, config.eval_sequences))))
    inputs = model_inputs(batch)
    video = batch["video"].numpy()
    if sample_fn is not None:
        predicted, label = np.asarray(sample_fn(state.model, batch)), "samples"
    else:
        logits = state.model.conditional_logits(**inputs)
        predicted, label = expected_frames(config, logits).numpy(), "teacher_forced_predictions"
    rows = []
    for b in range(len(video)):
        rows += [video[b], predicted[b]]
    with writer.as_default(step=step):
        for k, v in metrics.items():
            if np.ndim(v):  # per-colour figures: one curve per colour (nats_per_dim_channel/R, ...)
                for colour, value in zip("RGB", v, strict=False):
                    tf.summary.scalar(f"{k}/{colour}", value)
            else:
                tf.summary.scalar(k, v)
        # Rows: ground truth (context + future) / the model's frames under it, as in the paper's Fig. 4.
        tf.summary.image(f"{label}/truth_then_model", video_grid(rows)[None], step=step)
    log(f"step {step}: validation {name} {metrics[name]:.4f}" + _bound(metrics), progress)
    return metrics


def _bound(metrics):
    return f" (lower bound {metrics['lower_bound']:.2f})" if "lower_bound" in metrics else ""
