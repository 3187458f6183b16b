"""MCP tools for the diagnostic commands: thread, monitor, logger, sc, sm, source, line, dashboard (bound by
``server.build``)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field

from ..cli import registry
from ..commands.thread.model import DEFAULTS as THREAD
from .options import option_field
from .server import CHANGES, Adder, Cls, Method, Module, Pid, Timeout, Tools, _argv, _summary


def register(tools: Tools, add: Adder) -> None:
    for binder in (_thread, _monitor, _logger, _search, _source, _line_tool, _dashboard):
        binder(tools, add)


def _thread(tools: Tools, add: Adder) -> None:
    if "thread" not in registry.COMMANDS:
        return

    async def thread(
        pid: Pid,
        view: Annotated[
            Literal["list", "one", "busiest", "blocking"],
            Field(description="every thread; one thread's stack; the busiest with stacks; who blocks whom"),
        ] = "list",
        thread_id: Annotated[int | None, Field(description="view=one: the native thread id (as listed)")] = None,
        top: Annotated[int, option_field("thread", "-n", "view=busiest: how many threads")] = 3,
        interval_ms: Annotated[int, option_field("thread", "-i", "CPU use measured over this long")] = THREAD[
            "interval"
        ],
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        if view == "blocking":
            return await tools.call(pid, ["thread", "-b"], timeout_s)
        interval = {"-i": str(interval_ms)}
        if view == "one":
            if thread_id is None:
                raise tools.tool_error("view=one needs thread_id")
            return await tools.call(pid, _argv("thread", str(thread_id), options=interval), timeout_s)
        if view == "busiest":
            return await tools.call(pid, _argv("thread", options={"-n": str(top), **interval}), timeout_s)
        return await tools.call(pid, _argv("thread", options=interval), timeout_s)

    add(
        thread,
        "thread",
        _summary("thread") + " Read-only; list, one and busiest read the process from outside (no agent); "
        "blocking asks the agent.",
    )


def _monitor(tools: Tools, add: Adder) -> None:
    if "monitor" not in registry.COMMANDS:
        return

    async def monitor(
        pid: Pid,
        module: Module,
        method: Method,
        cls: Cls = None,
        cycle_s: Annotated[float, option_field("monitor", "-c")] = 5.0,
        cycles: Annotated[int | None, Field(description="reports; default: as many as fit in timeout_s", ge=1)] = None,
        filter: Annotated[str | None, Field(description="count only calls for which this is true")] = None,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        if cycle_s >= timeout_s:
            raise tools.tool_error("cycle_s must be shorter than timeout_s")
        count = cycles if cycles is not None else max(1, math.floor(timeout_s * 0.9 / cycle_s))
        words = ["monitor", module, *([cls] if cls else []), method]
        options = {"-c": str(cycle_s), "-n": str(count), "-f": filter}
        return await tools.call(pid, _argv(*words, options=options), timeout_s)

    add(
        monitor,
        "monitor",
        _summary("monitor") + " Bounded: `cycles` reports of `cycle_s` seconds, or `timeout_s`; hooks the function "
        "meanwhile (values are only read) and removes the hook at the end.",
        reads=False,
    )


def _logger(tools: Tools, add: Adder) -> None:
    if "logger" not in registry.COMMANDS:
        return

    async def logger(
        pid: Pid,
        name: Annotated[str | None, Field(description="one logger and its descendants; 'root' for the root")] = None,
        level: Annotated[
            str | None, Field(description="set this level (DEBUG, INFO, ...) for for_s seconds; needs name")
        ] = None,
        for_s: Annotated[
            float, option_field("logger", "--for", "seconds the level change lasts, then reverted")
        ] = 10.0,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        if level is not None and for_s >= timeout_s:
            raise tools.tool_error("for_s must be shorter than timeout_s (the change lasts while the call runs)")
        options = {"--name": name, "--level": level, "--for": str(for_s) if level is not None else None}
        return await tools.call(pid, _argv("logger", options=options), timeout_s)

    add(
        logger,
        "logger",
        _summary("logger") + " Without level: read-only. " + CHANGES.lower() + "with level, the logger's level "
        "is changed for for_s seconds and reverted at the end (also if the call is stopped).",
        changes=True,
    )


ScPattern = Annotated[str, Field(description="glob over module.Class (* and ?), or a plain name matched at the end")]
SmPattern = Annotated[
    str, Field(description="glob over module.[Class.]function (* and ?), or a plain name matched at the end")
]
Detail = Annotated[bool, Field(description="also file, line, and bases (sc) or signature (sm)")]
NO_MATCH = " Read-only; a pattern that matches nothing is an error."


def _search(tools: Tools, add: Adder) -> None:
    async def sc(
        pid: Pid,
        pattern: ScPattern,
        detail: Detail = False,
        limit: Annotated[int, option_field("sc", "-n", "matches to show")] = 50,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        return await tools.call(pid, _argv("sc", pattern, options={"-n": str(limit)}, flags={"-d": detail}), timeout_s)

    async def sm(
        pid: Pid,
        pattern: SmPattern,
        detail: Detail = False,
        limit: Annotated[int, option_field("sm", "-n", "matches to show")] = 50,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        return await tools.call(pid, _argv("sm", pattern, options={"-n": str(limit)}, flags={"-d": detail}), timeout_s)

    if "sc" in registry.COMMANDS:
        add(sc, "sc", _summary("sc") + NO_MATCH)
    if "sm" in registry.COMMANDS:
        add(sm, "sm", _summary("sm") + NO_MATCH)


def _source(tools: Tools, add: Adder) -> None:
    if "source" not in registry.COMMANDS:
        return

    async def source(
        pid: Pid,
        module: Module,
        cls: Annotated[str | None, Field(description="a class, or the class of method")] = None,
        method: Annotated[str | None, Field(description="a function (or the method of cls)")] = None,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        words = ["source", module, *([cls] if cls else []), *([method] if method else [])]
        return await tools.call(pid, _argv(*words), timeout_s)

    add(source, "source", _summary("source") + " Read-only (the file is compiled, never run).")


def _line_tool(tools: Tools, add: Adder) -> None:
    if "line" not in registry.COMMANDS:
        return

    async def line(
        pid: Pid,
        module: Module,
        method: Method,
        line: Annotated[int, Field(description="the source line (as the source tool numbers it)", ge=1)],
        cls: Cls = None,
        expr: Annotated[str | None, Field(description="what to show, over the local variables")] = None,
        filter: Annotated[str | None, Field(description="only hits for which this is true")] = None,
        count: Annotated[int, Field(description="stop after this many hits", ge=1, le=1000)] = 5,
        timeout_s: Timeout = 15.0,
    ) -> dict[str, Any]:
        words = ["line", module, *([cls] if cls else []), method, str(line)]
        options = {"--expr": expr, "-f": filter, "-n": str(count)}
        return await tools.call(pid, _argv(*words, options=options), timeout_s)

    add(
        line,
        "line",
        _summary("line") + " Bounded by count and timeout_s; watches that one function only (sys.monitoring on 3.12+, "
        "a hook before) and removes it at the end. Values are only read.",
        reads=False,
    )


def _dashboard(tools: Tools, add: Adder) -> None:
    if "dashboard" not in registry.COMMANDS:
        return

    async def dashboard(
        pid: Pid,
        interval_ms: Annotated[int, option_field("dashboard", "-i")] = 2000,
        # not the option's range: -n 0 means "until stopped", which a bounded call must not ask for
        frames: Annotated[int | None, Field(description="frames; default: as many as fit in timeout_s", ge=1)] = None,
        timeout_s: Timeout = 30.0,
    ) -> dict[str, Any]:
        if interval_ms / 1000.0 >= timeout_s:
            raise tools.tool_error("interval_ms must be shorter than timeout_s")
        count = frames if frames is not None else max(1, math.floor(timeout_s * 0.9 * 1000.0 / interval_ms))
        return await tools.call(pid, _argv("dashboard", options={"-i": str(interval_ms), "-n": str(count)}), timeout_s)

    add(
        dashboard,
        "dashboard",
        _summary("dashboard") + " Read-only: nothing is hooked and no user code runs; a gc callback times "
        "collections while it runs and is removed at the end. Bounded: `frames` of `interval_ms`, or `timeout_s`.",
    )
