"""Shared fixtures: interpreters found on this machine, and real targets."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# Known defects, written down where they fail instead of hidden: each entry is (a substring of the
# test id, the reason). They stay non-strict xfails until their issue is fixed, and the closing note
# of the issue names them.
KNOWN_DEFECTS = [
    (
        "test_kill_safety.py::test_random_kill_sweep",
        ("",),
        "issue 15: a client killed after queueing a pending call (busy target) can leave the next "
        "attach failing (the late bootstrap claims the next attempt's ticket); the target is unharmed",
    ),
    (
        "test_kill_safety.py::test_kill_at_every_phase",
        ("-busy]",),
        "issue 15: as above, for the kill at the DONE phase of a busy target",
    ),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for path, markers, reason in KNOWN_DEFECTS:
            if path in item.nodeid and any(marker in item.nodeid for marker in markers):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
