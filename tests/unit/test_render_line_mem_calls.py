"""Text of ``line`` and ``mem top`` and the shared call helpers, from events in the agents' shapes
(docs/schema) with values captured for real (``services.capture``)."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from flight_profiler.commands import calls
from flight_profiler.commands.line.client import SPEC as LINE
from flight_profiler.commands.mem.client import SPEC as MEM
from flight_profiler.errors import UsageError
from flight_profiler.render.console import make_console
from flight_profiler.services.capture import CaptureOptions, capture

WHEN = 1776591338.9535


pytestmark = pytest.mark.usefixtures("utc")  # the shared fixture in conftest.py


def _text(renderable: Any) -> list[str]:
    out = io.StringIO()
    make_console(color=False, file=out, width=100).print(renderable)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_line_start_hit_and_end() -> None:
    start = {
        "kind": "start",
        "target": "app.Cart.total",
        "callable": "method",
        "file": "/srv/app.py",
        "line": 40,
        "at_line": 44,
        "limit": 3,
        "mechanism": "sys.monitoring",
    }
    assert _text(LINE.render(start)) == [
        "watching line 44 of app.Cart.total (method at app.py:40, sys.monitoring); -n 3; Ctrl-C to stop"
    ]
    hit = {
        "kind": "hit",
        "index": 2,
        "time": WHEN,
        "thread": "worker-1",
        "tid": 77,
        "daemon": False,
        "skipped": 4,
        "values": [
            {"expr": "subtotal", "value": capture(12.5, CaptureOptions(expand=1))},
            {"expr": "items", "value": capture(["a", "b"], CaptureOptions(expand=1))},
        ],
    }
    lines = _text(LINE.render(hit))
    assert lines[0] == "(4 matching call(s) before this one were skipped by --rate)"
    assert lines[1] == "#2 2026-04-19 09:35:38:953 thread=worker-1"
    assert lines[2].startswith("subtotal = ") and "12.5" in lines[2]
    assert lines[3].startswith("items = ") and "'a'" in "\n".join(lines[3:])
    failed = {**hit, "skipped": 0, "values": [], "error": "NameError: name 'x' is not defined"}
    assert _text(LINE.render(failed)) == [
        "#2 2026-04-19 09:35:38:953 thread=worker-1",
        "NameError: name 'x' is not defined",
    ]
    end = {"kind": "end", "reason": "limit", "shown": 3, "skipped": 2, "dropped": 1}
    assert _text(LINE.render(end)) == [
        "3 hit(s) shown; 2 matching call(s) skipped by --rate; 1 result(s) dropped: the client read too slowly"
    ]


def _top(lines: list[dict[str, Any]], already: bool) -> dict[str, Any]:
    return {
        "action": "top",
        "interval": 2.0,
        "already_tracing": already,
        "size": 3 * 1024 * 1024,
        "count": 1200,
        "lines": lines,
    }


def test_mem_top_with_lines_nothing_or_an_earlier_tracemalloc() -> None:
    rows = [
        {
            "file": "/srv/cache.py",
            "line": 12,
            "source": "self.rows.append(row)",
            "size": 2 * 1024 * 1024,
            "count": 1000,
        },
        {"file": "/srv/io.py", "line": 3, "source": "", "size": 4096, "count": 2},
    ]
    text = _text(MEM.render(_top(rows, already=False)))
    assert text[0] == "allocated in 2 s, still alive at the end: 3.0 MiB in 1200 blocks"
    assert "/srv/cache.py:12" in text[2] and "1000" in text[2]
    assert text[3].strip() == "self.rows.append(row)"
    assert "/srv/io.py:3" in text[4]
    empty = _text(MEM.render(_top([], already=True)))
    assert empty == [
        "allocated in 2 s, growth while tracemalloc was already on (left on): 3.0 MiB in 1200 blocks",
        "nothing allocated",
    ]


def test_notices_of_a_newer_agent_are_one_line_each() -> None:
    assert _text(calls.render_notice({"kind": "new", "error": "filter raised\x1b[2J"})) == ["filter raised\\x1b[2J"]
    assert _text(calls.render_notice({"kind": "new", "message": "budget reached"})) == ["budget reached"]
    assert calls.render_notice({"kind": "new"}) is None


def test_the_shared_numeric_checks_say_the_option() -> None:
    assert calls.budget_request(argparse.Namespace(budget_ms=None)) == {}
    assert calls.budget_request(argparse.Namespace(budget_ms=5.0)) == {"budget_ms": 5.0}
    with pytest.raises(UsageError, match=r"--budget-ms must be between 1 and 3600000, got 0\.5"):
        calls.budget_request(argparse.Namespace(budget_ms=0.5))
    with pytest.raises(UsageError, match="-n must be at least 1, got 0"):
        calls.at_least(0, 1, "-n")
    with pytest.raises(UsageError, match="--rate must not be negative, got -1"):
        calls.non_negative(-1, "--rate")
    assert calls.at_least(3, 1, "-n") == 3 and calls.non_negative(0.0, "--rate") == 0.0


def test_where_shortens_only_absolute_paths() -> None:
    assert calls.where("/srv/app/models.py", 7) == "models.py:7"
    assert calls.where("<string>", 1) == "<string>:1"


def test_line_and_logger_show_the_targets_names_escaped_whole() -> None:
    """Thread, logger and level names are the target's: escaped by the renderer, so the CR and BEL of a
    name are shown (rich drops them from text it is given raw) and a table measures what it shows."""
    from flight_profiler.commands.logger.client import SPEC as LOGGER

    name = "w\x1b]0;t\x07\r\u202e"
    shown = "w\\x1b]0;t\\x07\\r\\u202e"
    hit = {"kind": "hit", "index": 1, "time": WHEN, "thread": name, "tid": 7, "daemon": True, "values": []}
    assert _text(LINE.render({**hit, "error": "E: " + name})) == [
        "#1 2026-04-19 09:35:38:953 thread=" + shown,
        "E: " + shown,
    ]
    logger = {"name": "app" + name, "level": "NOTICE" + name, "effective": "INFO", "propagate": True}
    tree = {"kind": "tree", "loggers": [{**logger, "disabled": False, "handlers": []}], "total": 1, "shown": 1}
    lines = _text(LOGGER.render(tree))
    assert lines[1].split() == ["app" + shown, "NOTICE" + shown, "INFO", "yes", "-"], lines
    changed = {"kind": "changed", "name": "app" + name, "old_level": "INFO", "level": "DEBUG", "effective": "DEBUG"}
    assert _text(LOGGER.render({**changed, "seconds": 1}))[0].startswith("app%s: level INFO -> DEBUG" % shown)
