"""Run in a fresh process: one training step of `tiny` on 1 device and on 2 logical CPU devices, same global batch.

Prints the max abs difference between the resulting weights (and the losses) as JSON.
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


def one_step(devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        state = training.create_train_state(config)
    ds = strategy.distribute_datasets_from_function(pipelines.distributed_train_dataset_fn(config, seed=0, start=0))
    step = training.make_train_step(config, state, strategy)
    loss, metric, norm = step(next(iter(ds)))
    return [v.numpy() for v in state.model.trainable_variables], float(loss), float(norm)


w1, l1, n1 = one_step(["/cpu:0"])
w2, l2, n2 = one_step(["/cpu:0", "/cpu:1"])
diff = max(float(np.abs(a - b).max()) for a, b in zip(w1, w2, strict=True))
moved = max(float(np.abs(a).max()) for a in w1)
print(json.dumps({"max_weight_diff": diff, "loss_1": l1, "loss_2": l2, "norm_1": n1, "norm_2": n2, "scale": moved}))
