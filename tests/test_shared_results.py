import threading
import time

import pytest

from tests.shared_results import once_per_session


class _Factory:
    """The part of pytest's tmp_path_factory that once_per_session reads."""

    def __init__(self, base):
        self.base = base

    def getbasetemp(self):
        return self.base


@pytest.mark.parametrize("worker", [None, "gw0"])
def test_concurrent_callers_share_one_computation(tmp_path, monkeypatch, worker):
    if worker:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    else:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    calls, results = [], []

    def compute(directory):
        calls.append(directory)
        time.sleep(0.5)  # the other caller arrives while this one computes
        (directory / "value").write_text("42")

    def ask(base):
        directory = once_per_session(_Factory(base), "x", compute)
        results.append((directory / "value").read_text())

    # Two workers' temporary directories under one session root (or, without xdist, one directory).
    bases = [tmp_path / "gw0", tmp_path / "gw1"] if worker else [tmp_path, tmp_path]
    threads = [threading.Thread(target=ask, args=(b,)) for b in bases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == ["42", "42"]
    # Negative control: another name is computed again.
    once_per_session(_Factory(bases[0]), "y", compute)
    assert len(calls) == 2


def test_a_failure_reaches_the_callers_that_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    errors = []

    def compute(directory):
        time.sleep(0.5)
        raise ValueError("no such preset")

    def ask(base):
        try:
            once_per_session(_Factory(base), "x", compute, timeout=30)
        except (ValueError, AssertionError) as e:
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(tmp_path / w,)) for w in ("gw0", "gw1")]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert sorted(type(e).__name__ for e in errors) == ["AssertionError", "ValueError"]
    waited = next(e for e in errors if isinstance(e, AssertionError))
    assert "failed in another test process" in str(waited) and "no such preset" in str(waited)
