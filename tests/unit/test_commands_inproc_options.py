"""The agent halves' options and refusals, in this process: what ``test_every_command_inproc`` leaves out.

Each case builds its request with the command's own parser from a command line, runs it through a real
session (``agent_harness``), renders what came back with the client's renderer, and checks one fact
of the answer: the option did what it says, or the refusal is a one-line error naming the problem.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import hook_shapes as S
import pytest
from agent_harness import InProcessAgent, run_untraced

from flight_profiler.render.console import make_console
from flight_profiler.services import usercode


@pytest.fixture(scope="module")
def agent() -> Iterator[InProcessAgent]:
    agent = InProcessAgent()
    yield agent
    agent.close()


def _spec(command: str) -> Any:
    return importlib.import_module("flight_profiler.commands.%s.client" % command).SPEC


def _text(command: str, events: list[dict[str, Any]]) -> str:
    spec = _spec(command)
    out = io.StringIO()
    console = make_console(color=False, file=out, width=120)
    for event in events:
        renderable = spec.render(event)
        if renderable is not None:
            console.print(renderable)
    text = out.getvalue()
    assert not any(ch < " " and ch != "\n" for ch in text), text
    return text


def _run(
    agent: InProcessAgent, command: str, line: str, act: Callable[[], Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    job = agent.start(command, _spec(command).parse_line(line))
    if act is not None:
        agent.wait_for(job, "start")
        act()
    events, end = agent.finish(job)
    return events, end, _text(command, events) if end["status"] == "ok" else ""


def _ok(agent: InProcessAgent, command: str, line: str, act: Callable[[], Any] | None = None) -> str:
    events, end, text = _run(agent, command, line, act)
    assert end["status"] == "ok", end
    assert events and text.strip()
    return text


def _refused(agent: InProcessAgent, command: str, line: str) -> str:
    _, end, _ = _run(agent, command, line)
    assert end["status"] == "error", end
    error = str(end["error"])
    assert error and "\n" not in error and "Traceback" not in error, error
    return error


# ------------------------------------------------------------------------------------------- trace


def _thrice() -> None:
    for n in range(3):
        S.outer(n)


def test_trace_shows_the_nested_calls_of_each_hooked_call(agent: InProcessAgent) -> None:
    text = _ok(agent, "trace", "hook_shapes outer -n 2 -i 0", _thrice)
    assert "inner" in text and "uses_nothing" in text


def test_trace_skips_fast_calls_and_filters(agent: InProcessAgent) -> None:
    assert "inner" in _ok(agent, "trace", "hook_shapes outer -n 1 -i 0 -f 'args[0] == 2'", _thrice)
    # no call of outer takes an hour: the job ends when its calls are done and shows none
    job = agent.start("trace", _spec("trace").parse_line("hook_shapes outer -n 1 -et 3600000"))
    agent.wait_for(job, "start")
    _thrice()
    agent.cancel(job)
    events, end = agent.finish(job)
    assert end["status"] == "cancelled" and [e["kind"] for e in events] == ["start"]


def test_trace_of_a_method_recursion_and_an_exception(agent: InProcessAgent) -> None:
    assert "method" in _ok(agent, "trace", "hook_shapes Shapes method -n 1 -i 0", lambda: S.Shapes(2).method(3))
    assert "recursive" in _ok(agent, "trace", "hook_shapes recursive -n 1 -i 0 -d 3", lambda: S.recursive(6))
    assert "└─ [" in _ok(agent, "trace", "hook_shapes call_raises -n 1 -i 0", S.call_raises)  # raises, caught


def test_trace_of_a_generator_and_a_coroutine(agent: InProcessAgent) -> None:
    assert "inner_gen" in _ok(agent, "trace", "hook_shapes outer_gen -n 1 -i 0", lambda: S.outer_gen(3))
    _ok(agent, "trace", "hook_shapes coro -n 1 -i 0", lambda: asyncio.run(S.coro(2)))


def test_trace_refuses_what_it_cannot_hook(agent: InProcessAgent) -> None:
    assert "h24_nowhere" in _refused(agent, "trace", "h24_nowhere f")
    assert "no_such" in _refused(agent, "trace", "hook_shapes no_such")
    _refused(agent, "trace", "hook_shapes BASE")


# ----------------------------------------------------------------------------------- stack, monitor, tt


def test_stack_of_a_hooked_call_with_a_filter_and_a_name(agent: InProcessAgent) -> None:
    text = _ok(agent, "stack", "hook_shapes plain -n 1 -f 'args[0] == 2'", lambda: [S.plain(n) for n in range(4)])
    assert "plain" in text
    _ok(agent, "stack", "hook_shapes Shapes method -n 1", lambda: S.Shapes(1).method(1))


def test_stack_of_calls_whose_filter_raises_fails_and_says_why(agent: InProcessAgent) -> None:
    """It ended as if -n were reached: "0 call stack(s) shown", status 0, the filter's error never said."""
    _, end, _ = _run(
        agent, "stack", "hook_shapes plain -n 1 -f args[0]['nokey']", lambda: [S.plain(n) for n in range(4)]
    )
    assert end["status"] == "error" and "raised TypeError" in end["error"] and "switched off" in end["error"], end


def test_monitor_counts_failures(agent: InProcessAgent) -> None:
    _ok(agent, "monitor", "hook_shapes raises -c 0.05 -n 1", S.call_raises)


def test_tt_records_lists_shows_and_deletes(agent: InProcessAgent) -> None:
    _ok(agent, "tt", "-t hook_shapes plain -n 2", lambda: [S.plain(n) for n in range(2)])
    listed = _ok(agent, "tt", "-l")
    assert "plain" in listed
    rows = [row for e in _run(agent, "tt", "-l")[0] if e["kind"] == "list" for row in e["records"]]
    first = next(row["index"] for row in rows if "plain" in repr(row))
    _ok(agent, "tt", "-i %d -x 2" % first)
    _ok(agent, "tt", "-l -m plain")
    assert _run(agent, "tt", "-d %d" % first)[1]["status"] == "ok"
    assert _run(agent, "tt", "-da")[1]["status"] == "ok"
    assert "plain" not in _text("tt", _run(agent, "tt", "-l")[0])
    _refused(agent, "tt", "-i 987654")


# ---------------------------------------------------------------------------------- source, sm, sc


def test_source_of_a_module_a_class_and_refusals(agent: InProcessAgent) -> None:
    assert "class Shapes" in _ok(agent, "source", "hook_shapes Shapes")
    assert "def recursive" in _ok(agent, "source", "hook_shapes")
    assert "def closure" in _ok(agent, "source", "hook_shapes make_closure")
    _refused(agent, "source", "h24_nowhere")
    _refused(agent, "source", "hook_shapes Nope")
    _refused(agent, "source", "sys")  # a built-in module has no source


def test_sm_and_sc_refuse_what_is_not_there(agent: InProcessAgent) -> None:
    _refused(agent, "sm", "h24_nowhere.Class.*")
    _refused(agent, "sc", "-d h24_nowhere.Nothing")


# ------------------------------------------------------------------------------------- reload


def test_reload_swaps_a_function_body_and_refuses_a_changed_signature(
    agent: InProcessAgent, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(str(tmp_path), "h24_reloadable.py")
    with open(path, "w") as fh:
        fh.write("def answer(x):\n    return x + 1\n\nclass Box:\n    def get(self):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("h24_reloadable")
    try:
        assert module.answer(1) == 2
        with open(path, "w") as fh:
            fh.write("def answer(x):\n    return x + 100\n\nclass Box:\n    def get(self):\n        return 2\n")
        _ok(agent, "reload", "h24_reloadable answer")
        assert module.answer(1) == 101
        _ok(agent, "reload", "h24_reloadable Box get")
        assert module.Box().get() == 2
        with open(path, "w") as fh:
            fh.write("def answer(x, y):\n    return x + y\n")
        _refused(agent, "reload", "h24_reloadable answer")
        assert module.answer(1) == 101  # refused: unchanged
        with open(path, "w") as fh:
            fh.write("def answer(x):\n    return (\n")
        _refused(agent, "reload", "h24_reloadable answer")
        with open(path, "w") as fh:
            fh.write("def other(x):\n    return x\n")
        _refused(agent, "reload", "h24_reloadable answer")
    finally:
        sys.modules.pop("h24_reloadable", None)


# ---------------------------------------------------------------------------- thread, dashboard


def test_thread_of_one_id_over_an_interval(agent: InProcessAgent) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="h24-sleeper", daemon=True)
    worker.start()
    try:
        assert "h24-sleeper" in _ok(agent, "thread", "")
        assert "h24-sleeper" in _ok(agent, "thread", str(worker.ident))
        _ok(agent, "thread", "-n 1 -i 100")
        assert "h24-sleeper" in _ok(agent, "thread", "-i 0")  # one snapshot: nothing marked stuck
    finally:
        stop.set()
        worker.join(10)


def test_dashboard_frames(agent: InProcessAgent) -> None:
    events, end, text = _run(agent, "dashboard", "-i 100 -n 2")
    assert end["status"] == "ok" and len(events) >= 2, (events, end)
    assert text.strip()


# ------------------------------------------------------------------------------------- mem, logger


def test_mem_summary_orders_and_the_interval_views(agent: InProcessAgent) -> None:
    assert _ok(agent, "mem", "summary --limit 3 --order ascending")
    _ok(agent, "mem", "diff -i 1 --limit 5")
    _ok(agent, "mem", "top -i 1 --limit 5")


def test_logger_lists_sets_and_restores_a_level(agent: InProcessAgent) -> None:
    log = logging.getLogger("h24.coverage")
    log.setLevel(logging.WARNING)
    assert "h24.coverage" in _ok(agent, "logger", "")
    assert "h24.coverage" in _ok(agent, "logger", "--name h24.coverage")
    _ok(agent, "logger", "--name h24.coverage --level DEBUG --for 0.2")
    assert log.level in (logging.DEBUG, logging.WARNING)
    _refused(agent, "logger", "--name h24.coverage --level NOPE")


def _refused_while(stuck: threading.Event, agent: InProcessAgent, args: str) -> str:
    """``logger ARGS``'s one-line error while ``stuck`` holds the program's code, within 4 s (a 300 ms budget)."""
    stuck.set()
    try:
        started = time.monotonic()
        error = _refused(agent, "logger", args)
        assert time.monotonic() - started < 4, "the job waited past its budget"
    finally:
        stuck.clear()
    return error


class _StuckLogger(logging.Logger):
    """A Logger subclass whose setLevel never returns while ``stuck`` is set: the program's code."""

    stuck = threading.Event()

    def setLevel(self, level: Any) -> None:
        while self.stuck.is_set():
            time.sleep(0.005)
        super().setLevel(level)


def test_logger_level_on_a_logger_whose_set_level_hangs_ends_with_one_line_and_the_session_goes_on(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setLevel (and level) of a Logger subclass ran on the job's thread with no budget: one that
    looped held the job for good, and its cleanup held the detach."""
    monkeypatch.setattr(usercode, "AGENT_BUDGET_MS", 300.0)
    stuck = _StuckLogger("h.stuck")
    stuck.level = logging.WARNING
    monkeypatch.setitem(logging.Logger.manager.loggerDict, "h.stuck", stuck)
    error = _refused_while(_StuckLogger.stuck, agent, "--name h.stuck --level DEBUG --for 5")
    assert "setLevel()" in error and "ran over the budget of 300 ms and was stopped" in error, error
    assert stuck.level == logging.WARNING  # stopped before it changed anything, and nothing else changed it
    assert "h.stuck" in _ok(agent, "logger", "")  # the session goes on


class _Masked:
    """Not a Logger, in the manager's dict, with a ``__class__`` that never returns: isinstance() asks it."""

    stuck = threading.Event()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        while self.stuck.is_set():
            time.sleep(0.005)
        return _Masked


def test_logger_level_on_a_name_whose_entry_hangs_ends_with_one_line(
    agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name's entry was tested with isinstance() outside any budget: a ``__class__`` property
    that looped held the job's thread for good."""
    monkeypatch.setattr(usercode, "AGENT_BUDGET_MS", 300.0)
    monkeypatch.setitem(logging.Logger.manager.loggerDict, "h.masked", _Masked())
    error = _refused_while(_Masked.stuck, agent, "--name h.masked --level DEBUG --for 5")
    assert "manager's dict" in error and "ran over the budget of 300 ms" in error, error
    assert "no logger named 'h.masked'" in _refused(agent, "logger", "--name h.masked --level DEBUG")


# -------------------------------------------------------------------------------------- console


def test_console_keeps_a_namespace_and_reports_errors(agent: InProcessAgent) -> None:
    source = textwrap.dedent(
        """
        import hook_shapes
        shapes = [hook_shapes.Shapes(n) for n in range(3)]
        len(shapes)
        """
    )
    events, end = agent.run("console", {"source": source})
    assert end["status"] == "ok" and "3" in _text("console", events)
    events, end = agent.run("console", {"source": "raise KeyError('h24')"})
    assert end["status"] == "ok" and "KeyError" in _text("console", events)


@pytest.mark.parametrize(
    ("source", "last"),
    [("exit()", "SystemExit: None"), ("quit(3)", "SystemExit: 3"), ("input()", "RuntimeError: input()")],
)
def test_console_tracebacks_hold_the_users_frames_only(agent: InProcessAgent, source: str, last: str) -> None:
    """The exit(), quit() and input() the console provides raise from our code: the user's traceback
    ends at their own line, as Python's would, not in services/expr.py."""
    events, end = agent.run("console", {"source": "def f():\n    " + source + "\nf()"})
    error = events[-1]["error"]
    assert end["status"] == "ok" and error.splitlines()[-1].startswith(last), error
    assert error.count('File "<console>"') == 2 and error.count("File ") == 2, error


# ------------------------------------------------------------------------------------------- line


@pytest.mark.parametrize("option", ["-f", "--expr"])
@pytest.mark.parametrize("user_code", ["exit()", "(_ for _ in ()).throw(KeyboardInterrupt)"])
def test_line_user_code_that_exits_never_ends_the_applications_thread(
    agent: InProcessAgent, option: str, user_code: str
) -> None:
    """SystemExit and KeyboardInterrupt from -f/--expr were not caught (``except Exception``): raised
    in the application's thread at that line, they ended it (a thread ends silently on SystemExit).
    Now, as watch's, the user code is switched off and the command ends saying why."""
    reached: list[int] = []

    def app() -> None:
        for n in range(3):
            reached.append(S.plain(n))

    _, end, _ = _run(agent, "line", "hook_shapes plain 14 %s %s -n 2" % (option, user_code), lambda: run_untraced(app))
    assert reached == [2, 3, 4], reached  # every call returned to the application
    assert end["status"] == "error" and end["error"].endswith(": switched off"), end
    assert ("SystemExit" if "exit" in user_code else "KeyboardInterrupt") in end["error"]


# ----------------------------------------------------------------------------- torch, gilstat


def test_torch_without_torch_is_a_clear_refusal(agent: InProcessAgent) -> None:
    if "torch" in sys.modules:
        pytest.skip("torch is loaded here")
    _refused(agent, "torch", "memory -s")
    _refused(agent, "torch", "profile hook_shapes plain --wait 0.1")


# ------------------------------------------------------------------------- thread -b, stack's views


class _Blocked:
    """Threads and asyncio tasks stuck the ways ``thread -b`` explains; all released at ``close``."""

    def __init__(self) -> None:
        self.a, self.b = threading.Lock(), threading.Lock()
        self.rlock = threading.RLock()
        self.holding = threading.Event()
        self.go = threading.Event()
        self.threads: list[threading.Thread] = []
        self.loop = asyncio.new_event_loop()
        self.stop: Any = None

    def _cross(self, first: Any, second: Any, ready: threading.Event) -> None:
        first.acquire()
        ready.set()
        self.go.wait(30)
        if second.acquire(timeout=30):
            second.release()
        try:
            first.release()
        except RuntimeError:
            pass  # released by close() to end the crossing

    def _hold_rlock(self) -> None:
        with self.rlock:
            self.holding.set()
            self.go.wait(30)

    def _wait_rlock(self, rlock: Any) -> None:  # the lock in a local: what thread -b looks for in the frame
        self.holding.set()
        if rlock.acquire(timeout=30):
            rlock.release()

    async def _tasks(self) -> None:
        lock = asyncio.Lock()
        self.stop = asyncio.Event()

        async def holder() -> None:
            async with lock:
                await self.stop.wait()

        async def waiter() -> None:
            async with lock:
                pass

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        second = asyncio.ensure_future(waiter())
        self.loop.call_soon_threadsafe(self.holding.set)
        await asyncio.gather(first, second)

    def start(self) -> None:
        ready = [threading.Event(), threading.Event()]
        jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (self._cross, (self.a, self.b, ready[0])),
            (self._cross, (self.b, self.a, ready[1])),
            (self._hold_rlock, ()),
        ]
        for index, (fn, args) in enumerate(jobs):
            thread = threading.Thread(target=fn, args=args, name="h24-blocked-%d" % index, daemon=True)
            thread.start()
            self.threads.append(thread)
        for event in ready:
            assert event.wait(30)
        assert self.holding.wait(30)
        self.holding.clear()
        self.go.set()  # the crossing threads now wait for each other's lock
        waiter = threading.Thread(target=self._wait_rlock, args=(self.rlock,), name="h24-rlock-waiter", daemon=True)
        waiter.start()
        self.threads.append(waiter)
        assert self.holding.wait(30)  # about to block (thread -b's interval gives it the time to)
        self.holding.clear()
        looper = threading.Thread(target=self.loop.run_until_complete, args=(self._tasks(),), daemon=True)
        looper.name = "h24-loop"
        looper.start()
        self.threads.append(looper)
        assert self.holding.wait(30)

    def close(self) -> None:
        if self.a.locked():
            self.a.release()  # a plain lock may be released by any thread: the crossing ends
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        for thread in self.threads:
            thread.join(30)
        self.loop.close()


@pytest.fixture
def blocked() -> Iterator[_Blocked]:
    scene = _Blocked()
    scene.start()
    try:
        yield scene
    finally:
        scene.close()


def test_thread_b_names_a_deadlock_an_rlock_owner_and_an_asyncio_lock(agent: InProcessAgent, blocked: _Blocked) -> None:
    events, end = agent.run("thread", _spec("thread").parse_line("-b -i 100"))
    assert end["status"] == "ok", end
    report = events[-1]
    assert report["cycles"], report  # the two crossing threads
    waiters = " ".join(repr(wait.get("waiter")) for wait in report["waits"])
    assert "h24-blocked-0" in waiters and "waiter" in waiters, waiters  # a thread and the asyncio task
    text = _text("thread", events)
    assert "h24-blocked-0" in text and "h24-blocked-1" in text


def test_stack_from_inside_lists_threads_and_asyncio_tasks(agent: InProcessAgent, blocked: _Blocked) -> None:
    events, end = agent.run("stack", {"threads": True})
    assert end["status"] == "ok"
    names = [thread["name"] for thread in events[0]["threads"]]
    assert "h24-blocked-0" in names and events[0]["from"] == "agent"
    events, end = agent.run("stack", {})
    assert end["status"] == "ok"
    tasks = [task for loop in events[0]["loops"] for task in loop["tasks"]]
    assert len(tasks) >= 3, events  # the gather, the holder, the waiter
    assert any(task["awaited_by"] for task in tasks)


# ------------------------------------------------------------------------------------------ gilstat


def test_gilstat_names_job_is_stopped_by_off_from_another_job(agent: InProcessAgent) -> None:
    job = agent.start("gilstat", {"action": "names", "interval": 0.05})
    while not agent.inbox[job]:  # its events have no "kind": read the first one as it comes
        agent._pump()
    first = agent.inbox[job][0]["data"]
    assert first["action"] == "names" and threading.current_thread().name in first["threads"].values()
    events, end = agent.run("gilstat", {"action": "off"})
    assert end["status"] == "ok" and events[0]["stopped"] == 1
    _, end = agent.finish(job)
    assert end["status"] in ("ok", "cancelled")
    _, end = agent.run("gilstat", {"action": "names", "interval": 0})
    assert end["status"] == "error" and "interval" in end["error"]
    _, end = agent.run("gilstat", {"action": "sideways"})
    assert end["status"] == "error" and "unknown gilstat action" in end["error"]


# ------------------------------------------------------------------------------- trace: the hard shapes


def _many_calls() -> None:
    S.recursive(300)  # 300 nested calls: beyond the depth shown, and many recorded events
    for n in range(1500):
        S.plain(n)


def _big() -> None:
    _many_calls()


def test_trace_of_a_large_tree_is_cut_at_its_depth(agent: InProcessAgent) -> None:
    events, end, text = _run(agent, "trace", "%s _big -n 1 -i 0" % __name__, _big)
    assert end["status"] == "ok", end
    trees = [event for event in events if event["kind"] == "trace"]
    assert trees, events
    tree = trees[0]["root"]
    assert tree["name"] == "_big" and tree["children"][0]["name"] == "_many_calls", tree
    assert "_many_calls" in text, text


def test_trace_of_generators_and_awaits_shows_the_waits(agent: InProcessAgent) -> None:
    assert "[yield]" in _ok(agent, "trace", "hook_shapes gen -n 1 -i 0", S.drive_gen)
    text = _ok(agent, "trace", "hook_shapes agen -n 1 -i 0", lambda: asyncio.run(_drain(S.agen(2))))
    assert "[await]" in text or "[yield]" in text
    assert "[await]" in _ok(agent, "trace", "hook_shapes coro -n 1 -i 0", lambda: asyncio.run(S.coro(3)))


async def _drain(agen: Any) -> None:
    async for _ in agen:
        pass


def test_trace_beside_the_thread_s_own_profiler_puts_it_back(agent: InProcessAgent) -> None:
    seen: list[str] = []

    def own_profiler(frame: Any, event: str, arg: Any) -> None:
        seen.append(event)

    def profiled_call() -> None:
        sys.setprofile(own_profiler)
        try:
            S.plain(1)
        finally:
            sys.setprofile(None)

    assert "plain" in _ok(agent, "trace", "hook_shapes plain -n 1 -i 0", profiled_call)
    assert seen  # the application's profiler still saw its events


def test_trace_rate_and_budget_count_what_they_left_out(agent: InProcessAgent) -> None:
    job = agent.start("trace", _spec("trace").parse_line("hook_shapes plain -n 3 -i 0 --rate 1 --budget 1"))
    agent.wait_for(job, "start")
    for n in range(200):
        S.plain(n)
    agent.cancel(job)
    events, end = agent.finish(job)
    assert end["status"] in ("ok", "cancelled"), end
    # one tree in the first second (--rate 1); what the rate or the budget left out is counted at the end
    assert [event["kind"] for event in events].count("trace") == 1, events
    _text("trace", events)
