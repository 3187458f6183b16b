"""The in-process layer's checks of the in-target code on every interpreter found (tests/unit/inproc_smoke.py).

The unit tests run under the development venv only (pytest is not installed
in the target interpreters); the in-target code is stdlib-only, so a small
stdlib-only runner exercises it in-process on each interpreter: the session
over a socketpair, hooks over every function kind, a trace tree, cancel and
detach, a rate limit with a fake clock. No target is attached.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from interpreters import find_interpreters

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.join(os.path.dirname(HERE), "unit")
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")


@pytest.mark.parametrize(("version", "python"), find_interpreters(), ids=[v for v, _ in find_interpreters()])
def test_in_target_code_in_process(version: str, python: str) -> None:
    # the script's own directory (tests/unit) comes first on sys.path; src/ is our code, not an install
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": SRC,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", ""),  # the run's own (conftest), not the user's
    }
    proc = subprocess.run(
        [python, os.path.join(UNIT, "inproc_smoke.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=UNIT,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.split()[:1] == ["ok"], proc.stdout + proc.stderr
