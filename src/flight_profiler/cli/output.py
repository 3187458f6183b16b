"""Where results go: rich text for people, JSON lines for scripts and agents."""

from __future__ import annotations

import sys

from ..protocol.framing import json_text
from ..render.plain import Plain
from ..render.safe import safe_line

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import IO, Any

    from rich.console import Console, RenderableType

JSON_SCHEMA_VERSION = 1


class Output:
    """Consoles are made on first use: ``--json`` runs never import rich."""

    def __init__(self, as_json: bool, color: bool) -> None:
        self.as_json = as_json
        self.color = color
        self._console: Console | None = None
        self._err: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = _make(self.color and sys.stdout.isatty(), None)
        return self._console

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _make(self.color and sys.stderr.isatty(), sys.stderr)
        return self._err

    def result(self, command: str, data: dict[str, Any], renderable: RenderableType | None) -> None:
        if self.as_json:
            self._json({"schema": JSON_SCHEMA_VERSION, "command": command, "result": data})
        elif isinstance(renderable, Plain) and self._console is None:
            renderable.write(sys.stdout, self.color)  # a line of text: rich is not imported for it
        elif renderable is not None:
            self.console.print(renderable)

    def error(self, command: str | None, message: str) -> None:
        if self.as_json:
            self._json({"schema": JSON_SCHEMA_VERSION, "command": command, "error": message})
        else:
            self._status(Plain("error: %s" % safe_line(message), "red"))  # one line, whatever it holds

    def note(self, message: str) -> None:
        """Progress and status lines: on stderr, so stdout stays the result alone (text or JSON)."""
        if self.as_json:
            sys.stderr.write(safe_line(message) + "\n")
        else:
            self._status(Plain(safe_line(message), "dim"))

    def _status(self, line: Plain) -> None:
        """A note or an error line on stderr. Written here while nothing else on stderr went through rich:
        importing it for one line cost a text-mode ``--cmd detach`` (or any failed ``--cmd``) ~60 ms of CPU."""
        if self._err is None:
            line.write(sys.stderr, self.color)
        else:
            self.err.print(line)

    def _json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(dumps(obj) + "\n")
        sys.stdout.flush()


def dumps(obj: dict[str, Any]) -> str:
    """``json.dumps(obj, default=repr)``, character for character, without importing json (~1.4 ms of
    every ``--json`` start-up, issue 14): the protocol's C encoder with json.dumps's default separators."""
    return json_text(obj, ": ", ", ")


def _make(color: bool, file: IO[str] | None) -> Console:
    from ..render.console import make_console

    return make_console(color, file=file)
