"""Results that the tests of one session share, across pytest-xdist workers too."""

import os
import time


def once_per_session(tmp_path_factory, name, compute, timeout=1800):
    """`compute(directory)` once per test session, with its result in DIRECTORY (returned): under pytest-xdist the
    workers share the session's temporary root, so the first worker to ask computes and the others wait for it
    (`--dist worksteal` can hand tests of one shared result to both workers). A failure is reported to every worker
    that asked, not waited out."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # .../pytest-N/popen-gwK: the session's root, shared by its workers
    directory = base / "once" / name
    done, failed = directory.with_suffix(".done"), directory.with_suffix(".failed")
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(directory.with_suffix(".lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        first = True
    except FileExistsError:
        first = False
    if not first:  # another worker computes it
        deadline = time.monotonic() + timeout
        while not done.exists():
            if failed.exists():
                raise AssertionError(f"{name}: failed in another test process:\n{failed.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: another test process did not finish it within {timeout} s")
            time.sleep(0.2)
        return directory
    directory.mkdir()
    try:
        compute(directory)
    except BaseException as e:
        failed.write_text(f"{type(e).__name__}: {e}"[-3000:])
        raise
    done.touch()
    return directory
