"""A stand-in for the MCP server's ``Tools`` (shared by the unit tests of the MCP surface)."""

from __future__ import annotations

from typing import Any


class Recorder:
    """Records the argument vector each tool call would run, and answers nothing."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.tool_error = RuntimeError

    async def call(self, pid: int, argv: list[str], timeout_s: float) -> dict[str, Any]:
        self.calls.append(argv)
        return {}
