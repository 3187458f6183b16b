"""The one place a rich Console is made; everything else receives it."""

from __future__ import annotations

import os
from typing import IO

from rich.console import Console


def make_console(color: bool = True, file: IO[str] | None = None, width: int | None = None) -> Console:
    """A console honouring ``--no-color``, ``NO_COLOR`` and non-terminal output."""
    no_color = not color or "NO_COLOR" in os.environ
    return Console(
        file=file,
        width=width,
        no_color=no_color,
        color_system=None if no_color else "auto",
        highlight=False,
        soft_wrap=True,
    )
