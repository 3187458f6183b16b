"""Where results go: rich text for people, JSON lines for scripts and agents."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, RenderableType

JSON_SCHEMA_VERSION = 1


class Output:
    def __init__(self, console: Console, as_json: bool, err_console: Console) -> None:
        self.console = console
        self.err = err_console
        self.as_json = as_json

    def result(self, command: str, data: dict[str, Any], renderable: RenderableType | None) -> None:
        if self.as_json:
            self._json({"schema": JSON_SCHEMA_VERSION, "command": command, "result": data})
        elif renderable is not None:
            self.console.print(renderable)

    def error(self, command: str | None, message: str) -> None:
        if self.as_json:
            self._json({"schema": JSON_SCHEMA_VERSION, "command": command, "error": message})
        else:
            self.err.print("error: %s" % message, style="red", markup=False)

    def note(self, message: str) -> None:
        """Progress and status lines: on stderr, so stdout stays the result alone (text or JSON)."""
        self.err.print(message, style="dim", markup=False)

    def _json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, default=repr) + "\n")
        sys.stdout.flush()
