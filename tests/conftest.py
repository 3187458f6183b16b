"""Shared fixtures: interpreters found on this machine, and real targets."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# Known defects, written down where they fail instead of hidden: each entry is (a substring of the
# test id, the reason). They stay non-strict xfails until their issue is fixed, and the closing note
# of the issue names them.
KNOWN_DEFECTS: list[tuple[str, tuple[str, ...], str]] = []  # none known now


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for path, markers, reason in KNOWN_DEFECTS:
            if path in item.nodeid and any(marker in item.nodeid for marker in markers):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
