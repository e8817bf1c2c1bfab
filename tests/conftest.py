"""Shared helpers for the test tiers: the repository root and a runner for commands."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(argv, *, cwd=ROOT, env=None, check=False, timeout=900):
    """Run a command, return the CompletedProcess with text output (stderr folded in)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    proc.output = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.output[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def root():
    return ROOT
