import json
import math

import numpy as np
import pytest

from vpn_tf.stats import for_json, mean_and_stderr, mean_and_stderr_from_sums


def test_mean_and_stderr_on_a_small_case():
    mean, err = mean_and_stderr([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0
    assert math.isclose(err, math.sqrt(((4 + 1 + 0 + 9) / 3) / 4))
    means, errs = mean_and_stderr(np.array([[1.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_allclose(means, [2.0, 0.0])
    np.testing.assert_allclose(errs, [1.0, 0.0])
    assert math.isnan(mean_and_stderr([5.0])[1])


def test_sums_give_the_same_figures_as_the_values():
    v = np.random.default_rng(0).normal(3.0, 2.0, 101)
    a = mean_and_stderr(v)
    b = mean_and_stderr_from_sums(v.sum(), (v**2).sum(), v.size)
    np.testing.assert_allclose(a, b, rtol=1e-9)
    assert math.isnan(mean_and_stderr_from_sums(2.0, 4.0, 1)[1])


def test_for_json_writes_unknown_errors_as_null_and_keeps_the_rest():
    mean, err = mean_and_stderr([[5.0, 1.0]])  # one sequence: the errors are nan
    report = {"a": {"mean": mean, "stderr": err}, "n": np.int64(1), "row": (np.float32(0.5), float("inf"), "x")}
    with pytest.raises(ValueError, match="not JSON compliant"):  # the negative control: strict JSON refuses nan
        json.dumps(err.tolist(), allow_nan=False)
    text = json.dumps(for_json(report), allow_nan=False)
    assert json.loads(text) == {"a": {"mean": [5.0, 1.0], "stderr": [None, None]}, "n": 1, "row": [0.5, None, "x"]}
