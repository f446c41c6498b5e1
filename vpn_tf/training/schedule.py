"""The learning-rate plateau schedule (§5.1: "multiply the learning rate by 0.3 when learning flatlines")."""

from __future__ import annotations

import math

import tensorflow as tf


class Plateau(tf.Module):
    """Multiplies the learning rate by `factor` when the validation metric has not improved (by more than
    `min_delta`) for `patience` consecutive evaluations (§5.1: "multiply the learning rate by 0.3 when learning
    flatlines"). Its state lives in variables, so checkpoints restore it exactly.
    """

    def __init__(self, factor: float, patience: int, min_delta: float = 0.0):
        super().__init__(name="plateau")
        if not 0 < factor <= 1 or patience < 1:
            raise ValueError(f"need 0 < factor <= 1 and patience >= 1. Received: {factor}, {patience}")
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_evals")

    def update(self, value: float, learning_rate: tf.Variable) -> bool:
        """Records one evaluation (lower is better); returns True if the learning rate was decayed."""
        if value < float(self.best.numpy()) - self.min_delta:
            self.best.assign(value)
            self.bad_evals.assign(0)
            return False
        self.bad_evals.assign_add(1)
        if int(self.bad_evals.numpy()) >= self.patience:
            learning_rate.assign(learning_rate * self.factor)
            self.bad_evals.assign(0)
            return True
        return False
