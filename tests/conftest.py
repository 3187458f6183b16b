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
        "test_budget.py::",
        ("[3.14", "[3.15"),
        "issue 9: on 3.14+ under CPU load the watchdog's BudgetExceeded can land in the application "
        "thread outside the filter's handlers (reproduced with two CPU hogs)",
    ),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for path, markers, reason in KNOWN_DEFECTS:
            if path in item.nodeid and any(marker in item.nodeid for marker in markers):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
