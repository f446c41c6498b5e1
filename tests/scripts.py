"""Runs the repository's command-line scripts in fresh processes, as users do."""

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
