"""``gilstat``: who holds the GIL, for how long, and who waits for it (client side).

``gilstat on`` hooks CPython's take_gil/drop_gil with frida from here (see probe.py)
and prints, every interval, per thread, the seeds' cumulative columns in nanoseconds
(takecnt, hold_all, holdavg, take_all, takeavg, drogcnt, drog_all, dropavg; take =
waiting to get the GIL), or with ``--per-interval`` that interval's counts and times in
ms, and a warning line for each wait or hold over its threshold. It
runs until Ctrl-C, ``-d``, ``gilstat off`` (from any client) or ``detach``; on
every one of those, and when this client dies, the hooks are removed (frida
unloads its agent when we go away).

Thread names come from a small job in our agent, which is also how ``gilstat off``
and ``detach`` reach this client: when that job ends, measuring ends.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from ...errors import CommandError, FlightProfilerError, UsageError
from ...render.safe import safe_line
from ..spec import CommandSpec, LocalContext, number
from . import host, probe
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType

    from ...attach.connection import AgentConnection
    from .model import GilstatRequest, NamesRequest

DEFAULT_INTERVAL = DEFAULTS["interval"]
DEFAULT_MAX_THREADS = DEFAULTS["max_threads"]
MAX_WARNINGS_SHOWN = 20  # per interval; the rest are counted
NAMES_WAIT = 10.0  # seconds for the first thread names from the agent


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("on", "off"), help="start measuring, or stop every gilstat on this pid")
    parser.add_argument(
        "numbers",
        nargs="*",
        type=number(float),
        metavar="take_ms hold_ms [interval_s [max_threads]]",
        help="warn for waits/holds longer than take_ms/hold_ms (0: never); report every interval_s (default %g) "
        "seconds, at most max_threads threads (default %d)" % (DEFAULTS["interval"], DEFAULTS["max_threads"]),
    )
    parser.add_argument(
        "--per-interval",
        action="store_true",
        help="show each interval's counts and times in ms instead of the seeds' cumulative ns columns",
    )
    parser.add_argument(
        "-d",
        "--duration",
        metavar="S",
        type=number(float, 0, above=True),
        help="stop after this many seconds (default: until Ctrl-C)",
    )


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "on [take_ms hold_ms [interval_s [max_threads]]] [--per-interval] [-d]",
    "off",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("action", "`on`: start measuring; `off`: stop every gilstat on this pid and check the hooks are gone"),
    (
        "take_ms hold_ms [interval_s [max_threads]]",
        "warn for a wait longer than take_ms / a hold longer than hold_ms (0: never); report every interval_s "
        "seconds (0.1–3600); show at most max_threads threads",  # noqa: RUF001 (the skill's wording)
        "0 0 5 20",
    ),
    (
        "--per-interval",
        "show each interval's counts and times in ms (`takes`, `wait ms (avg)`, `hold ms (avg)`, `drops`, `drop ms "
        "(avg)`) instead of the cumulative ns columns",
    ),
    ("-d", "stop after S seconds", "until Ctrl-C"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "on [take_ms hold_ms [interval_s [max_threads]]] [--per-interval] -d",
    "off",
)
OVERVIEW = (
    "per-thread GIL statistics in the reference's cumulative ns columns (`takecnt, hold_all, holdavg, take_all, "
    "takeavg, drogcnt, drog_all, dropavg`; `--per-interval`: each interval in ms) and long-wait/long-hold warnings, "
    "by hooking `take_gil`/`drop_gil` with frida (`pip install 'flight_profiler[gil]'`); needs a libpython with its "
    "full symbol table (pyenv builds), and says why not elsewhere; the target's threads are paused for milliseconds "
    "while frida rewrites code (reported), and frida's own injector is a known risk (the gilstat skill says which)"
)


def _check_words(argv: list[str]) -> None:
    """``gilstat off 5``: the number parser would name the numbers' metavar; the user typed one word too many."""
    if argv[:1] == ["off"] and argv[1:]:
        raise UsageError("gilstat off takes no arguments, got %s" % " ".join(argv[1:]))


def _to_request(ns: argparse.Namespace) -> GilstatRequest:
    if ns.action == "off":
        if ns.numbers or ns.duration is not None or ns.per_interval:
            raise UsageError("gilstat off takes no arguments")
        return {"action": "off"}
    numbers: list[float] = ns.numbers
    if len(numbers) not in (0, 2, 3, 4):
        raise UsageError(
            "gilstat on takes: [take_ms hold_ms [interval_s [max_threads]]], got %d numbers" % len(numbers)
        )
    take_ms, hold_ms = (numbers[0], numbers[1]) if numbers else (0.0, 0.0)
    interval = numbers[2] if len(numbers) > 2 else DEFAULT_INTERVAL
    max_threads = numbers[3] if len(numbers) > 3 else DEFAULT_MAX_THREADS
    if take_ms < 0 or hold_ms < 0:
        raise UsageError("take_ms and hold_ms must be 0 (no warnings) or more")
    if not 0.1 <= interval <= 3600:
        raise UsageError("interval_s must be 0.1..3600 seconds, got %g" % interval)
    if max_threads < 1 or max_threads != int(max_threads):
        raise UsageError("max_threads must be a whole number of at least 1, got %g" % max_threads)
    return {
        "action": "on",
        "take_ms": take_ms,
        "hold_ms": hold_ms,
        "interval": interval,
        "max_threads": int(max_threads),
        "duration": ns.duration,
        "view": "interval" if ns.per_interval else "cumulative",
    }


def _run_local(request: dict[str, Any], ctx: LocalContext) -> Iterator[dict[str, Any]]:
    if request["action"] == "off":
        yield _off(ctx.pid)
    else:
        yield from _on(ctx.pid, request)


# ------------------------------------------------------------------ on


def _on(pid: int, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    functions = probe.find_functions(pid)  # first: a stripped build needs no frida to be told so
    probe.check_frida()  # its one-line install hint here; the host process imports it to hook
    from ...attach.attacher import AttachOptions, connect

    conn = connect(pid, AttachOptions())
    try:
        yield from _measure(pid, request, functions, conn)
    finally:
        conn.close()


def _measure(
    pid: int, request: dict[str, Any], functions: probe.GilFunctions, conn: AgentConnection
) -> Iterator[dict[str, Any]]:
    asked: NamesRequest = {"action": "names", "interval": request["interval"]}
    job = conn.start("gilstat", dict(asked))
    names = _Names(conn, job)
    names.wait_first()
    # in a process of its own, which takes the hooks out with the threads stopped even if we are killed
    hooks = host.HostedProbe(pid, functions, request["take_ms"], request["hold_ms"])
    started = time.monotonic()
    reason = "duration"
    try:
        yield {
            "action": "started",
            "pid": pid,
            "hooked": len(functions.take) + len(functions.drop),
            "library": functions.path,
            "interval": request["interval"],
            "paused_threads": hooks.hook_pause.threads,
            "paused_ms": round(hooks.hook_pause.seconds * 1000, 1),
        }
        report = _Report(request, started)
        previous = hooks.read()
        deadline = started + request["duration"] if request.get("duration") else None
        while True:
            next_report = report.next_at()
            stop = names.pump(min(next_report, deadline) if deadline else next_report)
            if stop is not None:
                reason = stop
                break
            if time.monotonic() >= next_report:
                current = hooks.read()
                yield report.event(previous, current, names)
                previous = current
            if deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        reason = "Ctrl-C"
    finally:
        inside = hooks.stop()
        names.cancel()
    stopped: dict[str, Any] = {
        "action": "stopped",
        "reason": reason,
        "seconds": round(time.monotonic() - started, 3),
        "paused_ms": round(hooks.unhook_seconds * 1000, 1),
    }
    if inside:
        stopped["still_inside"] = inside
    if hooks.unpaused:
        stopped["unpaused_rewrites"] = hooks.unpaused
    yield stopped


class _Names:
    """The agent's names job: thread names as they change, and whether it still runs."""

    def __init__(self, conn: AgentConnection, job: int) -> None:
        self.conn = conn
        self.job = job
        self.names: dict[str, str] = {}
        self.agent: set[str] = set()
        self.ended = False

    def wait_first(self) -> None:
        stop = self.pump(time.monotonic() + NAMES_WAIT, until_names=True)
        if stop is not None or not self.names:
            raise CommandError("the agent did not list the target's threads (%s)" % (stop or "no answer"))

    def pump(self, until: float, until_names: bool = False) -> str | None:
        """Take messages until ``until``; the reason to stop measuring, or None."""
        from ...attach.wire import Deadline
        from ...protocol.framing import ChannelClosed, FrameError

        while True:
            if until - time.monotonic() <= 0:
                return None
            try:
                msg = self.conn.reader.recv(until)  # bounded in size, depth and time, like every read
            except Deadline:
                return None
            except (ChannelClosed, FrameError):
                self.ended = True
                return "the agent went away (detach)"
            if msg.get("job") != self.job:
                continue
            if msg.get("type") == "event":
                self.names = msg["data"]["threads"]
                self.agent = set(msg["data"]["agent"])
                if until_names:
                    return None
            elif msg.get("type") == "end":
                self.ended = True
                if msg.get("status") == "error":
                    return "the agent failed: %s" % msg.get("error")
                return "gilstat off or detach"

    def cancel(self) -> None:
        if self.ended:
            return
        try:
            self.conn.cancel(self.job)
        except (OSError, FlightProfilerError):
            pass


class _Report:
    """Turns two readings into one interval's report."""

    def __init__(self, request: dict[str, Any], started: float) -> None:
        self.interval: float = request["interval"]
        self.max_threads: int = request["max_threads"]
        self.started = started
        self.count = 0
        self.view: str = request.get("view", "cumulative")

    def next_at(self) -> float:
        return self.started + (self.count + 1) * self.interval

    def event(self, before: probe.Reading, after: probe.Reading, names: _Names) -> dict[str, Any]:
        self.count += 1
        rows: list[dict[str, Any]] = []
        totals: list[dict[str, Any]] = []
        for tid, now in after.threads.items():
            if str(tid) in names.agent:
                continue
            name = names.names.get(str(tid), "")
            row = _delta(now, before.threads.get(tid))
            if row["takes"] or row["holds"] or row["drops"]:
                row["name"] = name
                rows.append(row)
            if now.takes or now.holds or now.drops:
                totals.append({**_cumulative(now), "thread_name": name, "tid": now.tid})
        rows.sort(key=lambda row: (-row["hold_total_ms"], row["tid"]))
        totals.sort(key=lambda row: (-row["hold_all"], row["tid"]))
        warnings = [w for w in after.warnings if str(w.tid) not in names.agent]
        return {
            "action": "report",
            "elapsed": round(self.count * self.interval, 3),
            "interval": self.interval,
            "view": self.view,
            "cumulative": totals[: self.max_threads],
            "threads": rows[: self.max_threads],
            "threads_hidden": max(0, len(rows) - self.max_threads),
            "warnings": [_warning(w, names, self.started) for w in warnings[:MAX_WARNINGS_SHOWN]],
            "warnings_more": max(0, len(warnings) - MAX_WARNINGS_SHOWN) + after.warnings_lost,
            "threads_uncounted": after.threads_lost,
        }


def _delta(now: probe.ThreadStats, before: probe.ThreadStats | None) -> dict[str, Any]:
    def minus(field: str) -> int:
        value: int = getattr(now, field)
        return value - (getattr(before, field) if before is not None else 0)

    takes, holds, drops = minus("takes"), minus("holds"), minus("drops")
    wait, hold, drop = minus("wait_ns") / 1e6, minus("hold_ns") / 1e6, minus("drop_ns") / 1e6
    return {
        "tid": now.tid,
        "takes": takes,
        "wait_total_ms": round(wait, 3),
        "wait_avg_ms": round(wait / takes, 3) if takes else 0.0,
        "holds": holds,
        "hold_total_ms": round(hold, 3),
        "hold_avg_ms": round(hold / holds, 3) if holds else 0.0,
        "drops": drops,
        "drop_total_ms": round(drop, 3),
        "drop_avg_ms": round(drop / drops, 3) if drops else 0.0,
        # the longest ever seen (the target keeps one maximum per thread)
        "wait_max_ms": round(now.wait_max_ns / 1e6, 3),
        "hold_max_ms": round(now.hold_max_ns / 1e6, 3),
    }


def _cumulative(now: probe.ThreadStats) -> dict[str, int]:
    """The seeds' columns: counts and nanoseconds since gilstat started (take = waiting to get the GIL)."""
    return {
        "takecnt": now.takes,
        "hold_all": now.hold_ns,
        "holdavg": now.hold_ns // now.holds if now.holds else 0,
        "take_all": now.wait_ns,
        "takeavg": now.wait_ns // now.takes if now.takes else 0,
        "drogcnt": now.drops,
        "drog_all": now.drop_ns,
        "dropavg": now.drop_ns // now.drops if now.drops else 0,
    }


def _warning(warning: probe.GilWarning, names: _Names, started: float) -> dict[str, Any]:
    return {
        "tid": warning.tid,
        "name": names.names.get(str(warning.tid), ""),
        "kind": warning.kind,
        "ms": round(warning.ns / 1e6, 3),
        "at": round(warning.at_ns / 1e9 - started, 3),  # seconds since gilstat started
    }


# ------------------------------------------------------------------ off


def _off(pid: int) -> dict[str, Any]:
    """Stop every gilstat measuring ``pid`` (through our agent) and check the code is restored."""
    from ...attach.attacher import existing_agent

    conn = existing_agent(pid)  # None: no agent, so no gilstat can be running (it needs one)
    stopped = 0
    if conn is not None:
        try:
            stopped = conn.run("gilstat", {"action": "off"}, timeout=10)[0]["stopped"]
        finally:
            conn.close()
    event: dict[str, Any] = {"action": "off", "stopped": stopped}
    try:
        functions = probe.find_functions(pid)
    except probe.GilUnavailable:
        return event
    deadline = time.monotonic() + 10
    while not probe.code_restored(pid, functions) and time.monotonic() < deadline:
        time.sleep(0.1)
    event["hooks_removed"] = probe.code_restored(pid, functions)
    return event


# ------------------------------------------------------------------ output


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.text import Text

    action = event["action"]
    if action == "started":
        return Text(
            "gilstat on pid %d: %d GIL functions hooked in %s (its %d threads paused %.1f ms meanwhile); a report "
            "every %g s (Ctrl-C or 'gilstat off' stops)"
            % (
                event["pid"],
                event["hooked"],
                safe_line(event["library"]),
                event["paused_threads"],
                event["paused_ms"],
                event["interval"],
            ),
            style="dim",
        )
    if action == "stopped":
        text = "gilstat stopped (%s) after %.1f s; hooks removed (threads paused %.1f ms)" % (
            safe_line(event["reason"]),
            event["seconds"],
            event["paused_ms"],
        )
        if event.get("unpaused_rewrites"):
            text += (
                "; %d of frida's code rewrites ran while the target's threads ran (they could not be kept "
                "stopped)" % event["unpaused_rewrites"]
            )
        if event.get("still_inside"):
            text += (
                "; %d call(s) were still waiting inside take_gil/drop_gil: frida's agent stays in the target until "
                "they return, then unloads itself" % event["still_inside"]
            )
        return Text(text, style="dim")
    if action == "off":
        text = "stopped %d gilstat session(s)" % event["stopped"]
        if "hooks_removed" in event:
            text += "; take_gil/drop_gil %s" % ("restored" if event["hooks_removed"] else "STILL HOOKED")
        return Text(text)
    return _render_report(event)


SEEDS_COLUMNS = ("takecnt", "hold_all", "holdavg", "take_all", "takeavg", "drogcnt", "drog_all", "dropavg")


def _cumulative_table(event: dict[str, Any]) -> RenderableType:
    """The seeds' table: thread_name, then cumulative counts and ns; the tid (ours) last. Plain aligned
    lines, never squeezed to the terminal's width: scripts and agents parse these columns."""
    from rich.text import Text

    header = ("thread_name", *SEEDS_COLUMNS, "tid")
    rows = [
        (safe_line(row["thread_name"] or "?"), *(str(int(row[name])) for name in SEEDS_COLUMNS), safe_line(row["tid"]))
        for row in event["cumulative"]
    ]
    widths = [max(len(cells[index]) for cells in (header, *rows)) for index in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))])

    return Text("\n".join([line(header), *(line(cells) for cells in rows)]), no_wrap=True, overflow="ignore")


def _render_report(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    if event.get("view", "cumulative") == "cumulative" and "cumulative" in event:
        parts: list[RenderableType] = [Text("GIL since start (ns), at %g s:" % event["elapsed"], style="bold")]
        parts.append(_cumulative_table(event) if event["cumulative"] else Text("no thread took the GIL", style="dim"))
    else:
        parts = [Text("GIL, %g s to %g s:" % (event["elapsed"] - event["interval"], event["elapsed"]), style="bold")]
        parts.append(_interval_table(event) if event["threads"] else Text("no thread took the GIL", style="dim"))
    return Group(*parts, *_report_notes(event))


def _interval_table(event: dict[str, Any]) -> RenderableType:
    """``--per-interval``: this interval's counts, totals and averages in ms."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    table.add_column("thread", no_wrap=True, min_width=12, max_width=28)
    for name in ("tid", "takes", "wait ms (avg)", "hold ms (avg)", "drops", "drop ms (avg)"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in event["threads"]:
        table.add_row(
            Text(safe_line(row["name"] or "?")),
            str(row["tid"]),
            str(row["takes"]),
            "%.1f (%.2f)" % (row["wait_total_ms"], row["wait_avg_ms"]),
            "%.1f (%.2f)" % (row["hold_total_ms"], row["hold_avg_ms"]),
            str(row["drops"]),
            "%.1f (%.3f)" % (row["drop_total_ms"], row["drop_avg_ms"]),
        )
    return table


def _report_notes(event: dict[str, Any]) -> list[RenderableType]:
    from rich.text import Text

    parts: list[RenderableType] = []
    if event["threads_hidden"]:
        parts.append(Text("... %d more threads (raise max_threads)" % event["threads_hidden"], style="dim"))
    for warning in event["warnings"]:
        parts.append(
            Text(
                "warning: %s (%s) %s the GIL for %.1f ms at %.3f s"
                % (
                    safe_line(warning["name"] or "?"),
                    warning["tid"],
                    "waited for" if warning["kind"] == "wait" else "held",
                    warning["ms"],
                    warning["at"],
                ),
                style="yellow",
            )
        )
    if event["warnings_more"]:
        parts.append(Text("... %d more warnings" % event["warnings_more"], style="yellow"))
    return parts


SPEC = CommandSpec(
    name="gilstat",
    summary="Per-thread GIL statistics every interval: takes, waits, holds, drops, and long waits/holds (frida).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("gilstat on", "gilstat on 5 5", "gilstat on 5 20 1 10 -d 30", "gilstat off"),
    add_arguments=_add_arguments,
    check_words=_check_words,
    to_request=_to_request,
    render=_render,
    run_local=_run_local,
    runs_locally=lambda request: True,
    changes_target=True,  # frida's agent and two hooks live in the target while it runs
)
