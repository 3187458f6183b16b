"""``perf``: a flame graph of where the target spends its time, sampled from outside by py-spy.

Nothing is injected: py-spy (from our own install, whatever PATH says) reads the
target's memory. Progress goes to stderr while sampling; the result is the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from ...errors import UsageError
from ...readers import pyspy
from ...render.safe import safe_block, safe_line
from ..outfile import check_destination, staged
from ..spec import CommandSpec, LocalContext, number
from ..userpath import user_path
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console, RenderableType

    from .model import PerfRequest

DEFAULT_FILES = {
    "svg": "flamegraph.svg",
    "speedscope": "profile.speedscope.json",
    "raw": "profile.collapsed.txt",
    "collapsed": "profile.collapsed.txt",
    "chrometrace": "profile.trace.json",
}
HOW_TO_OPEN = {
    "svg": "open it in a web browser: file://%s (click a frame to zoom, Ctrl-F to search)",
    "speedscope": "drop it onto https://www.speedscope.app (or run: speedscope %s)",
    "raw": "collapsed stacks, one 'frame;frame;... count' per line: flamegraph.pl or inferno-flamegraph "
    "draw it (%s), speedscope reads it too",
    "chrometrace": "load it in https://ui.perfetto.dev or chrome://tracing (%s)",
}
HOW_TO_OPEN["collapsed"] = HOW_TO_OPEN["raw"]
MAX_RATE = 10000
PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", nargs="?", type=number(int, 1), help="another pid to sample (default: the attached one)")
    parser.add_argument(
        "-f", "--filepath", metavar="FILE", help="where to write (default: flamegraph.svg in this directory)"
    )
    parser.add_argument(
        "-r",
        "--rate",
        metavar="N",
        type=number(int, 1, MAX_RATE),
        default=DEFAULTS["rate"],
        help="samples per second (default %d)" % DEFAULTS["rate"],
    )
    parser.add_argument(
        "-d",
        "--duration",
        metavar="S",
        type=number(float, 0, above=True),
        help="seconds to sample (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--format",
        metavar="FMT",
        choices=tuple(DEFAULT_FILES),
        default=DEFAULTS["format"],
        help="svg flame graph (default), speedscope JSON, raw/collapsed stacks, or chrometrace",
    )
    parser.add_argument("--native", action="store_true", help="include native (C/C++/Cython) frames")
    parser.add_argument("--idle", action="store_true", help="include idle (waiting) threads")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("[pid] [-f] [-r] [-d] [--format] [--native] [--idle]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("pid", "sample this other pid instead (e.g. one worker)", "the attached pid"),
    ("-f", "where to write (your machine; the directory must exist)", "`flamegraph.svg` etc. in the current directory"),
    ("-r", "samples per second (1..10000)"),
    ("-d", "seconds to sample", "until Ctrl-C"),
    ("--format", "`svg` flame graph, `speedscope` JSON, `raw`/`collapsed` stacks, `chrometrace`"),
    ("--native", "include native (C/C++/Cython) frames"),
    ("--idle", 'include idle (waiting) threads — for "where does the latency go", not CPU'),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("-d [-f] [--format] [-r] [--native] [--idle]",)
OVERVIEW = (
    "sample from outside with py-spy (shipped with us) into a flame graph; without `-d` until Ctrl-C, and the file is"
    " still written"
)


def _to_request(ns: argparse.Namespace) -> PerfRequest:
    # resolved here, against the user's working directory, before anything runs
    path = user_path(ns.filepath or DEFAULT_FILES[ns.format])
    _check_writable(path)
    return {
        "pid": ns.pid,
        "filepath": path,
        "rate": ns.rate,
        "duration": ns.duration,
        "format": ns.format,
        "native": ns.native,
        "idle": ns.idle,
    }


def _check_writable(path: str) -> None:
    if os.path.isdir(path):
        raise UsageError("-f %s is a directory; give a file name" % path)
    check_destination(path)  # never through a link, never another user's file


def _run_local(request: dict[str, Any], ctx: LocalContext) -> Iterator[dict[str, Any]]:
    pid = request.get("pid") or ctx.pid
    pyspy.require_stoppable(pid)  # before "sampling pid N..."
    progress = _Progress(pid, request["rate"], request.get("duration"))
    try:
        # py-spy opens its output by name, following links: it writes into our private directory
        with staged(request["filepath"]) as inner:
            recording = pyspy.record(
                pid,
                inner,
                fmt=request["format"],
                rate=request["rate"],
                duration=request.get("duration"),
                native=request["native"],
                idle=request["idle"],
                progress=progress.update,
            )
            if request["format"] in ("raw", "collapsed"):
                _defuse_text(inner)
    finally:
        progress.close()
    path = request["filepath"]
    yield {
        "pid": pid,
        "path": path,
        "format": request["format"],
        "samples": recording.samples,
        "errors": recording.errors,
        "seconds": round(recording.seconds, 3),
        "stopped": recording.stopped,
        "open": HOW_TO_OPEN[request["format"]] % safe_line(path),
    }


def _defuse_text(path: str) -> None:
    """Collapsed stacks are text people ``cat``: the target's function and file names get escaped like on screen."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:  # our private directory
        fh.write(safe_block(text))


class _Progress:
    """Elapsed time and samples so far, on stderr: one live line on a terminal, else a line every few seconds."""

    def __init__(self, pid: int, rate: int, duration: float | None) -> None:
        from ...render.console import make_console

        self.rate = rate
        self.duration = duration
        self.console: Console = make_console(sys.stderr.isatty(), file=sys.stderr)
        self.live = self.console.is_terminal
        self.next_line = PROGRESS_EVERY
        until = "for %g s" % duration if duration else "until Ctrl-C"
        self.console.print("sampling pid %d at %d Hz %s..." % (pid, rate, until), style="dim", markup=False)
        self.status: Any = None
        if self.live:
            self.status = self.console.status(self._message(0.0))
            self.status.start()

    def _message(self, elapsed: float) -> str:
        total = " / %g s" % self.duration if self.duration else ""
        return "sampling: %.1f s%s, ~%d samples" % (elapsed, total, elapsed * self.rate)

    def update(self, elapsed: float) -> None:
        if self.status is not None:
            self.status.update(self._message(elapsed))
        elif elapsed >= self.next_line:
            self.next_line = elapsed + PROGRESS_EVERY
            self.console.print(self._message(elapsed), style="dim", markup=False)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


STOPPED = {"duration": "after -d", "interrupted": "by Ctrl-C", "target exited": "because the target exited"}
KIND = {
    "svg": "flame graph",
    "speedscope": "speedscope profile",
    "raw": "collapsed stacks",
    "collapsed": "collapsed stacks",
    "chrometrace": "Chrome trace",
}


def _render(event: dict[str, Any]) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append("%s written to %s" % (KIND[event["format"]], safe_line(event["path"])), style="bold green")
    text.append(
        "\n%d samples in %.1f s, stopped %s%s"
        % (
            event["samples"],
            event["seconds"],
            STOPPED.get(event["stopped"], event["stopped"]),
            ", %d sampling errors" % event["errors"] if event["errors"] else "",
        )
    )
    text.append("\n" + safe_line(event["open"]), style="cyan")
    return text


SPEC = CommandSpec(
    name="perf",
    summary="Sample where the target spends its time and write a flame graph (py-spy, from outside).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "perf",
        "perf -f ~/flamegraph.svg",
        "perf -d 30 -f ~/flamegraph.svg",
        "perf -d 10 --format speedscope",
        "perf -r 1000 -d 5 --native",
    ),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    run_local=_run_local,
    runs_locally=lambda request: True,
)
