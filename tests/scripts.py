"""Runs the repository's command-line scripts in fresh processes, as users do, or their `main` in this process."""

import contextlib
import importlib
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}


def run_script(script, *args, env=None, timeout=300, check=False):
    """`python SCRIPT ARGS...` from the repository root; returns the CompletedProcess (text output)."""
    cmd = [sys.executable, os.path.join(ROOT, script), *[str(a) for a in args]]
    out = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and out.returncode != 0:
        raise AssertionError(f"{script} failed:\n{out.stderr[-3000:]}")
    return out


def script_command(script, *args):
    return [sys.executable, os.path.join(ROOT, script), *[str(a) for a in args]]


def run_command(script, *args):
    """What `python SCRIPT ARGS...` runs, `vpn_tf.commands.<name>.main(ARGS)`, in this process: a CompletedProcess
    with the exit code and what it printed. No fresh TensorFlow start (about 5 s a call): for the tests that check a
    command's output rather than its start-up, which the fresh-process tests of every script cover."""
    name = os.path.splitext(os.path.basename(script))[0]
    main = importlib.import_module(f"vpn_tf.commands.{name}").main
    argv = [str(a) for a in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(argv)
        except SystemExit as e:  # as the interpreter does: a message goes to stderr with exit code 1
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess([script, *argv], code, stdout.getvalue(), stderr.getvalue())
