"""Run in a fresh process (it splits the CPU into 2 logical devices before TensorFlow starts them).

Prints one JSON line comparing one training step of `tiny` on 1 device and on 2 devices (same global batch) under
RMSprop, plain SGD (an update proportional to the gradient, so a wrong replica scale shows), XLA and binarised
inputs; counts the tensors the step all-reduces; and evaluates a set whose last batch leaves a replica empty.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from datasets import pipelines  # noqa: E402
from vpn_tf import get_config, training  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
config = get_config("tiny", batch_size=4)
ONE, TWO = ["/cpu:0"], ["/cpu:0", "/cpu:1"]


class SGD(training._PreReducedGradients, keras.optimizers.SGD):
    pass


class CountingReduction(tf.distribute.ReductionToOneDevice):
    """Counts the tensors that go through cross-replica reductions (each all-reduce of a gradient is one)."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    # The batch implementation calls the single one per value: count only the outermost call.
    def reduce_implementation(self, reduce_op, per_replica_value, destinations, options):
        return self._counted(
            [per_replica_value], super().reduce_implementation, reduce_op, per_replica_value, destinations, options
        )

    def batch_reduce_implementation(self, reduce_op, value_destination_pairs, options):
        return self._counted(
            [v for v, _ in value_destination_pairs],
            super().batch_reduce_implementation,
            reduce_op,
            value_destination_pairs,
            options,
        )

    def _counted(self, values, fn, *args):
        if getattr(self, "_inside", False):
            return fn(*args)
        self.shapes += [tuple(v.values[0].shape) for v in values]
        self._inside = True
        try:
            return fn(*args)
        finally:
            self._inside = False


def one_step(devices, optimizer="rmsprop", jit=False, cfg=config, mixed_precision="float32"):
    counting = CountingReduction()
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=counting)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        state = training.create_train_state(cfg, mixed_precision)
        if optimizer == "sgd":
            state.optimizer = SGD(learning_rate=0.5)
            state.optimizer.build(state.model.trainable_variables)
    ds = strategy.distribute_datasets_from_function(pipelines.distributed_train_dataset_fn(cfg, seed=0, start=0))
    step = training.make_train_step(cfg, state, strategy, jit=jit)
    batch = next(iter(ds))
    counting.shapes.clear()
    step.get_concrete_function(batch)  # trace only: count what one step reduces
    traced = list(counting.shapes)
    step(batch)
    m = state.metrics.read()
    weights = [v.numpy() for v in state.model.trainable_variables]
    return weights, m, traced, [tuple(v.shape) for v in state.model.trainable_variables]


def diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


out, weights = {}, {}
# "binarized": binary frames drawn by each replica's input pipeline; the draws belong to the sequence, so the
# layouts must still agree.
binarized = config.replace(binarize_inputs=True)
cases = {"rmsprop": {}, "sgd": {"optimizer": "sgd"}, "xla": {"jit": True}, "binarized": {"cfg": binarized}}
for name, kwargs in cases.items():
    w1, m1, _, _ = one_step(ONE, **kwargs)
    w2, m2, traced, shapes = one_step(TWO, **kwargs)
    weights[name] = (w1, w2)
    out[name] = {
        "max_weight_diff": diff(w1, w2),
        "loss": [m1["loss"], m2["loss"]],
        "norm": [m1["grad_norm"], m2["grad_norm"]],
        "scale": max(float(np.abs(a).max()) for a in w1),
    }
    if name != "sgd":  # SGD takes rmsprop's path with another optimizer
        # Same seed, same step: a rerun gives identical weights.
        out[name]["rerun_diff"] = diff(w1, one_step(ONE, **kwargs)[0])
    if name == "rmsprop":
        out["reduced_shapes"] = [list(s) for s in traced]
        out["variable_shapes"] = [list(s) for s in shapes]

# SGD moved the weights by lr * gradient: the step's size itself must agree, not just its direction.
keras.utils.set_random_seed(0)
with tf.distribute.MirroredStrategy(ONE).scope():
    initial = [v.numpy() for v in training.create_train_state(config).model.trainable_variables]
w1, w2 = weights["sgd"]
# Remat on 2 replicas under XLA and bfloat16: tf.recompute_grad with replica variables inside a compiled step must
# give the update the step without remat gives.
remat_kw = dict(jit=True, mixed_precision="bfloat16")
w_plain, m_plain, _, _ = one_step(TWO, **remat_kw)
w_remat, m_remat, _, _ = one_step(TWO, cfg=config.replace(remat=True), **remat_kw)
start = initial  # the same seed's initial weights
out["remat_xla_bfloat16"] = {
    "max_weight_diff": diff(w_plain, w_remat),
    "update": max(float(np.abs(a - b).max()) for a, b in zip(w_plain, start, strict=True)),
    "loss": [m_plain["loss"], m_remat["loss"]],
    "norm": [m_plain["grad_norm"], m_remat["grad_norm"]],
}

out["sgd"]["update_norm"] = [
    float(np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(w, initial, strict=True)))) for w in (w1, w2)
]

# Evaluation across replicas: 5 sequences in global batches of 4, so the last batch has 1 and one replica none.
keras.utils.set_random_seed(0)
with tf.distribute.MirroredStrategy(ONE).scope():
    model = training.create_train_state(config).model
ds = pipelines.eval_dataset(config, "validation", 5)
evals = {}
for name, devices in (("one", ONE), ("two", TWO)):
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        replica_model = training.create_train_state(config).model
    replica_model.set_weights(model.get_weights())
    evaluator = training.Evaluator(config, replica_model, strategy, batch_size=4)
    first = evaluator(ds)
    second = evaluator(pipelines.eval_dataset(config, "validation", 3))
    evals[name] = {"five": first, "three": second, "traces": evaluator.traces}
values = []
for batch in ds.batch(2):
    values.append(training.per_example_nats(config, model.log_prob(**training.model_inputs(batch))).numpy())
values = np.concatenate(values).astype(np.float64)
evals["direct"] = {"mean": float(values.mean()), "stderr": float(values.std(ddof=1) / np.sqrt(len(values)))}
out["eval"] = evals
print(json.dumps(out))
