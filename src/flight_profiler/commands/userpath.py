"""Paths the user types (``-f FILE``, ``module FILE``), made absolute on the client side, with one light
import (the clients that take no file stay as light as they are: tests/integration/test_client_imports.py)."""

from __future__ import annotations

import os

from ..errors import UsageError


def user_path(text: str) -> str:
    """A path the user typed, absolute (``~`` expanded, relative to the current directory). One that
    is relative while the current directory no longer exists (a release directory a deploy removed
    under the user's shell) is a one-line error: ``abspath`` said only "[Errno 2] No such file or
    directory"."""
    path = os.path.expanduser(text)
    if os.path.isabs(path):
        return os.path.normpath(path)
    try:
        return os.path.abspath(path)
    except FileNotFoundError:
        raise UsageError(
            "cannot resolve %r: the current directory no longer exists (deleted?); give an absolute path, "
            "or cd to a directory that exists" % text
        ) from None
