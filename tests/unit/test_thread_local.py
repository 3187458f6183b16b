"""``thread`` read from outside, run on this very process: /proc is read for real, py-spy's dump is made
from ``sys._current_frames()`` in py-spy's JSON shape (py-spy cannot stop the process that runs it).

Checks what ``thread``, ``thread ID`` and ``thread -n N`` select and how each mode is shown.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from flight_profiler.commands.spec import LocalContext
from flight_profiler.commands.thread import client as thread_client
from flight_profiler.commands.thread.client import SPEC as THREAD
from flight_profiler.errors import UsageError
from flight_profiler.readers import proctasks, pyspy
from flight_profiler.render.console import make_console


def _dump(pid: int, native: bool = False) -> list[dict[str, Any]]:
    """What ``py-spy dump --json`` says of this process: innermost frame first."""
    assert pid == os.getpid()
    names = {thread.ident: thread for thread in threading.enumerate()}
    dump: list[dict[str, Any]] = []
    for ident, top in sys._current_frames().items():
        thread = names.get(ident)
        frames = []
        frame: FrameType | None = top
        while frame is not None:
            frames.append({"name": frame.f_code.co_name, "filename": frame.f_code.co_filename, "line": frame.f_lineno})
            frame = frame.f_back
        dump.append(
            {
                "thread_id": ident,
                "os_thread_id": thread.native_id if thread is not None else 0,
                "thread_name": thread.name if thread is not None else None,
                "owns_gil": ident == threading.get_ident(),
                "frames": frames,
            }
        )
    return dump


def fp_spinning(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def fp_sleeping(stop: threading.Event) -> None:
    stop.wait()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, threading.Thread]]:
    monkeypatch.setattr(pyspy, "dump", _dump)
    stop = threading.Event()
    started = {
        "busy": threading.Thread(target=fp_spinning, args=(stop,), name="fp-busy", daemon=True),
        "idle": threading.Thread(target=fp_sleeping, args=(stop,), name="fp-idle", daemon=True),
    }
    for thread in started.values():
        thread.start()
    yield started
    stop.set()
    for thread in started.values():
        thread.join(10)


def _run(line: str) -> tuple[dict[str, Any], str]:
    request = THREAD.parse_line(line)
    assert THREAD.run_local is not None and THREAD.runs_locally(request)
    context = LocalContext(pid=os.getpid(), cancelled=lambda: False)
    (event,) = list(THREAD.run_local(request, context))
    out = io.StringIO()
    make_console(color=False, file=out, width=200).print(THREAD.render(event))
    return event, out.getvalue()


def _by_name(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {thread["name"]: thread for thread in event["threads"]}


def test_every_thread_main_first_with_kernel_states(threads: dict[str, threading.Thread]) -> None:
    event, text = _run("-i 100")
    assert event["mode"] == "all" and event["pid"] == os.getpid() and event["total"] == len(event["threads"])
    assert event["threads"][0]["main"] and event["threads"][0]["tid"] == os.getpid()
    found = _by_name(event)
    idle = found["fp-idle"]
    assert idle["python"] and idle["tid"] == threads["idle"].native_id
    assert idle["state"] == "waiting on a lock" and idle["detail"] == "futex"  # Event.wait: a futex
    assert "frames" not in idle  # the list stays short
    assert text.splitlines()[0] == "pid %d: %d thread(s), CPU over 100 ms" % (os.getpid(), event["total"])
    assert any(line.split()[:2] == [str(idle["tid"]), "fp-idle"] for line in text.splitlines())
    assert "waiting on a lock (futex)" in text and "TID" in text and "PYTHON" in text


def test_the_busiest_threads_come_first_with_their_stacks(threads: dict[str, threading.Thread]) -> None:
    event, text = _run("-n 1000 -i 500")
    assert event["mode"] == "top" and event["total"] == len(event["threads"])
    shares = [thread["cpu"] for thread in event["threads"]]
    assert shares == sorted(shares, reverse=True)
    found = _by_name(event)
    busy, idle = found["fp-busy"], found["fp-idle"]
    assert busy["cpu"] > 0 and idle["cpu"] == 0  # a spinning thread gets some CPU; a waiting one none
    assert event["threads"].index(busy) < event["threads"].index(idle)
    assert "fp_spinning" in [frame["name"] for frame in busy["frames"]]
    assert "Thread %d (fp-busy) cpu=" % busy["tid"] in text and "in fp_spinning" in text
    (first,) = _run("-n 1 -i 0")[0]["threads"]  # -n keeps that many
    assert first["name"]


def test_our_threads_come_after_the_programs_among_equals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ours started first (the lower thread id, as after ids wrap): both idle, the program's is listed first."""
    monkeypatch.setattr(pyspy, "dump", _dump)
    stop = threading.Event()
    ours = threading.Thread(target=fp_sleeping, args=(stop,), name="flight_profiler-watchdog", daemon=True)
    app = threading.Thread(target=fp_sleeping, args=(stop,), name="fp-app-idle", daemon=True)
    try:
        ours.start()
        app.start()
        assert ours.native_id is not None and app.native_id is not None and ours.native_id < app.native_id
        for line in ("-n 1000 -i 100", "-i 100"):
            # by thread id: another test's agent parts in this process may have a watchdog thread of that name
            tids = [thread["tid"] for thread in _run(line)[0]["threads"]]
            assert tids.index(app.native_id) < tids.index(ours.native_id), (line, tids)
    finally:
        stop.set()
        ours.join(10)
        app.join(10)


def test_one_thread_by_native_id_or_python_ident(threads: dict[str, threading.Thread]) -> None:
    idle = threads["idle"]
    assert idle.native_id is not None and idle.ident is not None
    by_tid, text = _run("%d -i 0" % idle.native_id)
    assert by_tid["mode"] == "one" and [t["name"] for t in by_tid["threads"]] == ["fp-idle"]
    assert "in fp_sleeping" in text and "Thread %d (fp-idle)" % idle.native_id in text
    by_ident, _ = _run("%d -i 0" % idle.ident)
    assert by_ident["threads"][0]["tid"] == idle.native_id


def test_an_unknown_thread_is_a_one_line_error(threads: dict[str, threading.Thread]) -> None:
    with pytest.raises(UsageError, match=r"no thread 1 in pid %d \(thread lists the ids\)" % os.getpid()):
        _run("1 -i 0")


def test_a_native_thread_and_the_gil_holder_are_said() -> None:
    event = {
        "pid": 5,
        "interval_ms": 100,  # measured: 0 shows every CPU as "-"
        "total": 2,
        "mode": "one",
        "threads": [
            {
                "tid": 6,
                "name": None,
                "python": False,
                "main": False,
                "state": "in C",
                "detail": "",
                "cpu": 0.0,
                "owns_gil": False,
                "frames": [],
            },
            {
                "tid": 5,
                "name": "main",
                "python": True,
                "main": True,
                "state": "running",
                "detail": "",
                "cpu": 99.5,
                "owns_gil": True,
                "frames": [{"name": "work", "file": "/app/x.py", "line": 3}],
            },
        ],
    }
    out = io.StringIO()
    make_console(color=False, file=out, width=200).print(THREAD.render(event))
    assert out.getvalue().splitlines()[1:] == [
        "Thread 6 (?) cpu=0.0% in C",
        "    (no Python frames: a native thread)",
        "",
        "Thread 5 (main) cpu=99.5% running, holds the GIL",
        '    File "/app/x.py", line 3, in work',
        "",
    ]


def test_ctrl_c_during_the_interval_ends_without_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyspy, "dump", _dump)
    calls = []

    def cancelled() -> bool:
        calls.append(time.monotonic())
        return True

    context = LocalContext(pid=os.getpid(), cancelled=cancelled)
    assert list(thread_client._run_local(THREAD.parse_line("-i 60000"), context)) == []
    assert len(calls) == 1


def test_cpu_share_of_two_samples() -> None:
    before = proctasks.TaskSample(tid=1, comm="x", state="R", ticks=100)
    after = proctasks.TaskSample(tid=1, comm="x", state="R", ticks=150)
    assert proctasks.cpu_percent(before, after, 0.5, 100) == 100.0
    assert proctasks.cpu_percent(None, after, 0.5, 100) == 0.0
    assert proctasks.cpu_percent(before, after, 0.0, 100) == 0.0


def _blocked(thread: threading.Thread) -> None:
    """Until ``thread`` sleeps in the kernel (state S), as the tests reading it at once expect."""
    assert thread.native_id is not None  # started
    path = "/proc/self/task/%d/stat" % thread.native_id
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(path) as fh:
            if fh.read().rpartition(")")[2].split()[0] == "S":
                return
        time.sleep(0.005)
    raise AssertionError("%s never waited" % thread.name)


def test_with_no_interval_cpu_is_said_not_measured(threads: dict[str, threading.Thread]) -> None:
    """-i 0 reads the stacks at once: every thread showed 0.0 % "CPU over 0 ms", a hog among them."""
    _blocked(threads["idle"])  # read at once: a thread just started may not wait on its lock yet
    event, text = _run("-i 0")
    assert text.splitlines()[0] == "pid %d: %d thread(s), CPU not measured (-i 0)" % (os.getpid(), event["total"])
    idle = _by_name(event)["fp-idle"]
    [row] = [line.split() for line in text.splitlines() if line.split()[:2] == [str(idle["tid"]), "fp-idle"]]
    assert row[2] == "-", row
    _, one = _run("%d -i 0" % idle["tid"])
    assert " cpu=- waiting on a lock (futex)" in one, one
