"""The budget's stop never reaches an application thread, hammered; on every interpreter found.

Issue 9's last defect: on 3.14 (and 3.13 for comprehensions with a condition)
the watchdog's ``BudgetExceeded`` could end the application's thread, because
CPython's compiler leaves some instructions of a ``try`` body outside its
handler and the user's expression was compiled into the frame holding our
handlers. ``targets/budget_stress.py`` runs the agent's own guard code in the
interpreter under test, with many application threads, never-ending filters of
those shapes, a 1 ms watchdog poll and a 0.2 ms GIL switch interval; before the
fix every application thread died there on 3.13 and 3.14, every run. It also
checks, on 3.11+, that every instruction of our frames between the marking and
the unmarking is covered by a handler.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from interpreters import find_interpreters
from support import TARGETS

INTERPRETERS = find_interpreters()
SRC = os.path.dirname(os.path.dirname(os.path.abspath(str(__import__("flight_profiler").__file__))))
THREADS = 8
ROUNDS = 40


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_no_stop_escapes_into_application_threads(name: str, python: str) -> None:
    done = subprocess.run(
        [python, os.path.join(TARGETS, "budget_stress.py"), str(THREADS), str(ROUNDS)],
        env=dict(os.environ, PYTHONPATH=SRC),
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    result = json.loads(done.stdout)
    assert result["holes"] == []  # every instruction of ours between marking and unmarking has a handler
    assert result["escaped"] == []  # no excepthook, no unraisable: the application saw nothing
    assert result["finished"] == THREADS  # every application thread went on to its end
    assert result["stopped"] == THREADS * ROUNDS  # and every evaluation was really stopped
