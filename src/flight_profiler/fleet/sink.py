"""Where a group's results go: streamed under a header per target, or kept for a merged view.

Every member runner prints through its own ``MemberOutput``, which hands the result to the
group's ``Sink`` with the member's target. With ``--json`` each result and error line carries
``target: {pid, ppid, role, rank}``; after the command one ``fleet`` line sums it up. In text,
a command with a merged view (``fleet/merge.py``) prints that view at the end; the others print
each result under a one-line header naming its target.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..cli.output import JSON_SCHEMA_VERSION, Output
from ..render.safe import safe_line
from .select import Target

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .merge import Merger


class MemberOutput(Output):
    """One member's view of the group's output."""

    def __init__(self, sink: Sink, target: Target) -> None:
        super().__init__(sink.output.as_json, sink.output.color)
        self.sink = sink
        self.target = target

    @property
    def console(self) -> Console:
        return self.sink.output.console

    @property
    def err(self) -> Console:
        return self.sink.output.err

    def result(self, command: str, data: dict[str, Any], renderable: RenderableType | None) -> None:
        self.sink.result(self.target, command, data, renderable)

    def error(self, command: str | None, message: str) -> None:
        self.sink.error(self.target, command, message)

    def note(self, message: str) -> None:
        self.sink.output.note("%s: %s" % (self.target.label(), message))


class Sink:
    def __init__(self, output: Output) -> None:
        self.output = output
        self._lock = threading.Lock()
        self._command = ""
        self._merger: Merger | None = None
        self._targets: list[Target] = []
        self._results: dict[int, list[dict[str, Any]]] = {}
        self._errors: dict[int, str] = {}
        self._last: int | None = None  # the target whose header was printed last

    def member(self, target: Target) -> MemberOutput:
        return MemberOutput(self, target)

    def begin(self, command: str, merger: Merger | None, targets: list[Target]) -> None:
        with self._lock:
            self._command, self._merger, self._targets = command, merger, targets
            self._results = {target.key: [] for target in targets}
            self._errors = {}
            self._last = None

    def result(self, target: Target, command: str, data: dict[str, Any], renderable: RenderableType | None) -> None:
        with self._lock:
            self._join(target)
            self._results[target.key].append(data)
            if self.output.as_json:
                self._json({"command": command, "result": data, "target": target.to_json()})
            elif self._merger is None or not self._merger.collects:
                self._print(target, renderable)

    def error(self, target: Target, command: str | None, message: str) -> None:
        with self._lock:
            self._join(target)
            self._errors[target.key] = message
            if self.output.as_json:
                self._json({"command": command, "error": message, "target": target.to_json()})
            else:
                self.output.err.print("error: %s: %s" % (target.label(), safe_line(message)), style="red", markup=False)

    def end(self, failed: set[int]) -> None:
        """After every member finished: the merged view or the summary, and the ``fleet`` line."""
        from .merge import summary

        with self._lock:
            targets = self._targets
            if len(targets) < 2 and not failed:
                return
            outcome = summary(self._command, self._merger, targets, self._results, self._errors)
            if self.output.as_json:
                self._json({"command": self._command, "fleet": outcome.data})
            else:
                for renderable in outcome.render() if outcome.render is not None else ():
                    self.output.console.print(renderable)
                self.output.err.print(safe_line(outcome.line), style="bold" if not failed else "red", markup=False)

    def _join(self, target: Target) -> None:
        """Targets found while the command runs (in pods) join the group."""
        if target.key not in self._results:
            self._targets.append(target)
            self._results[target.key] = []

    def _print(self, target: Target, renderable: RenderableType | None) -> None:
        if renderable is None:
            return
        if len(self._targets) > 1 and self._last != target.key:
            from rich.rule import Rule

            self.output.console.print(Rule(safe_line(target.label()), align="left", style="cyan"))
            self._last = target.key
        self.output.console.print(renderable)

    def _json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"schema": JSON_SCHEMA_VERSION, **obj}, default=repr) + "\n")
        sys.stdout.flush()
