"""Means with standard errors: the one statistic every reported figure carries."""

from __future__ import annotations

import math

import numpy as np


def mean_and_stderr(values, axis: int = 0) -> tuple:
    """(mean, standard error of the mean) of `values` along `axis`: the sample standard deviation (ddof=1) over
    sqrt(n). With one value the error is nan (unknown), never 0."""
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan) if np.ndim(mean) else float("nan")
    stderr = values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, stderr


def mean_and_stderr_from_sums(total: float, squares: float, n: float) -> tuple[float, float]:
    """(mean, standard error) from running sums (sum, sum of squares, count), as distributed evaluation keeps them."""
    mean = total / n
    var = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else float("nan")
    return mean, math.sqrt(var / n)


def for_json(value):
    """`value` (nested dicts, lists, tuples, numbers, numpy scalars and arrays) with every non-finite float as None:
    JSON has no NaN, and the error of a single value is nan, which `json.dump` would write as a bare `NaN` that
    strict parsers (JavaScript's, `jq`) refuse."""
    if isinstance(value, dict):
        return {k: for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [for_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return for_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
