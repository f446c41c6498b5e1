"""Training and evaluation of VPNs: a custom tf.distribute loop (§5.1, §6.1 of the VPN paper), split by concern.

- `objectives.py`: the paper's metric, the loss, the batch's log-probability;
- `schedule.py`: the learning-rate plateau;
- `state.py`: what a checkpoint holds, the optimizer, the step's metric accumulators;
- `step.py`: one synchronous data-parallel step;
- `evaluation.py`: the metric on held-out data with standard errors, per sequence, per frame, paired differences;
- `workdir.py`: a training directory's files, compatibility checks, restoring a model;
- `loop.py`: `train_and_evaluate`.
`train.py` is a thin command line over `train_and_evaluate`.
"""

from vpn_tf.training.errors import TrainingError
from vpn_tf.training.evaluation import (
    Evaluator,
    compare,
    evaluate,
    paired_difference,
    per_frame_lines,
    per_frame_lower_bound,
    per_frame_report,
    per_frame_values,
    per_sequence_values,
    summary_lines,
    unit,
)
from vpn_tf.training.loop import (
    continuation_sampler,
    expected_frames,
    is_chief,
    make_strategy,
    nonfinite_problem,
    train_and_evaluate,
)
from vpn_tf.training.objectives import batch_log_prob, metric_name, model_inputs, per_example_loss, per_example_nats
from vpn_tf.training.schedule import Plateau
from vpn_tf.training.state import (
    MIXED_PRECISION,
    RMSprop,
    StepMetrics,
    TrainState,
    _PreReducedGradients,
    create_train_state,
)
from vpn_tf.training.step import make_train_step
from vpn_tf.training.workdir import (
    CONFIG_FILE,
    check_compatible,
    check_workdir,
    latest_checkpoint,
    load_config,
    restore_model,
    write_config,
)

__all__ = [
    "CONFIG_FILE",
    "MIXED_PRECISION",
    "Evaluator",
    "Plateau",
    "RMSprop",
    "_PreReducedGradients",
    "StepMetrics",
    "TrainState",
    "TrainingError",
    "batch_log_prob",
    "check_compatible",
    "check_workdir",
    "compare",
    "continuation_sampler",
    "create_train_state",
    "latest_checkpoint",
    "evaluate",
    "expected_frames",
    "is_chief",
    "load_config",
    "make_strategy",
    "make_train_step",
    "metric_name",
    "model_inputs",
    "nonfinite_problem",
    "paired_difference",
    "per_example_loss",
    "per_example_nats",
    "per_frame_lines",
    "per_frame_lower_bound",
    "per_frame_report",
    "per_frame_values",
    "per_sequence_values",
    "restore_model",
    "summary_lines",
    "train_and_evaluate",
    "unit",
    "write_config",
]
