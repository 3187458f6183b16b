"""``gilstat``'s client half without frida: its request checks, the agent's names job as the client reads
it, one interval's report from two readings of the counters, and the text of every event."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from flight_profiler.attach.wire import Deadline
from flight_profiler.commands.gilstat import client as gil
from flight_profiler.commands.gilstat.client import SPEC as GILSTAT
from flight_profiler.commands.gilstat.probe import GilWarning, Reading, ThreadStats
from flight_profiler.errors import CommandError, UsageError
from flight_profiler.protocol.framing import ChannelClosed
from flight_profiler.render.console import make_console


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("off 1", "gilstat off takes no arguments, got 1"),
        ("off extra", "gilstat off takes no arguments, got extra"),  # was: the numbers' parser named
        ("off -d 3", "gilstat off takes no arguments"),
        ("on 1", "got 1 numbers"),
        ("on 1 2 0.01", "interval_s must be 0.1..3600 seconds, got 0.01"),
        ("on 1 2 1 0", "max_threads must be a whole number of at least 1, got 0"),
        ("on 1 2 1 2.5", "got 2.5"),
    ],
)
def test_requests_the_parser_cannot_check_alone(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace(".", r"\.")):
        GILSTAT.parse_line(line)


def test_requests() -> None:
    assert GILSTAT.parse_line("off") == {"action": "off"}
    assert GILSTAT.parse_line("on 5 20 1 10 -d 30 --per-interval") == {
        "action": "on",
        "take_ms": 5.0,
        "hold_ms": 20.0,
        "interval": 1.0,
        "max_threads": 10,
        "duration": 30.0,
        "view": "interval",
    }
    assert GILSTAT.parse_line("on")["view"] == "cumulative"


class Reader:
    def __init__(self, script: list[Any]) -> None:
        self.script = script

    def recv(self, until: float) -> dict[str, Any]:
        item = self.script.pop(0) if self.script else Deadline()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]


class Conn:
    def __init__(self, script: list[Any], cancel_error: BaseException | None = None) -> None:
        self.reader = Reader(script)
        self.cancel_error = cancel_error
        self.cancelled: list[int] = []

    def cancel(self, job: int) -> None:
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancelled.append(job)


def _names(script: list[Any], **kwargs: Any) -> Any:
    return gil._Names(Conn(script, **kwargs), 3)  # type: ignore[arg-type]


NAMES = {"type": "event", "job": 3, "data": {"threads": {"11": "web-1", "12": "fp-agent"}, "agent": ["12"]}}


def test_the_names_job_as_the_client_reads_it() -> None:
    soon = time.monotonic() + 10
    names = _names([{"type": "event", "job": 9, "data": {}}, NAMES])
    names.wait_first()
    assert names.names == {"11": "web-1", "12": "fp-agent"} and names.agent == {"12"}
    assert names.pump(soon) is None  # Deadline: nothing more to read now
    assert names.pump(time.monotonic() - 1) is None  # past its time: reads nothing
    assert (
        _names([{"type": "end", "job": 3, "status": "error", "error": "boom"}]).pump(soon) == "the agent failed: boom"
    )
    ended = _names([{"type": "end", "job": 3, "status": "ok"}])
    assert ended.pump(soon) == "gilstat off or detach" and ended.ended
    ended.cancel()
    assert ended.conn.cancelled == []  # the job is over: nothing to cancel
    gone = _names([ChannelClosed()])
    assert gone.pump(soon) == "the agent went away (detach)"
    live = _names([])
    live.cancel()
    assert live.conn.cancelled == [3]
    _names([], cancel_error=OSError("closed")).cancel()  # a dead connection: nothing to do


def test_no_names_from_the_agent_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match=r"\(the agent went away \(detach\)\)"):
        _names([ChannelClosed()]).wait_first()
    monkeypatch.setattr(gil, "NAMES_WAIT", 0.0)
    with pytest.raises(CommandError, match=r"did not list the target's threads \(no answer\)"):
        _names([]).wait_first()


def _stats(tid: int, takes: int, wait_ms: float, holds: int, hold_ms: float, drops: int = 0) -> ThreadStats:
    ms = 1_000_000
    return ThreadStats(
        tid, takes, int(wait_ms * ms), int(wait_ms * ms), holds, int(hold_ms * ms), int(hold_ms * ms), drops, drops * ms
    )


def test_one_intervals_report_from_two_readings() -> None:
    names = _names([NAMES])
    names.wait_first()
    started = time.monotonic()
    report = gil._Report({"interval": 1.0, "max_threads": 1, "view": "interval"}, started)
    before = Reading({11: _stats(11, 10, 1, 10, 5)}, [], 0, 0, 0)
    at = int((started + 0.25) * 1e9)
    after = Reading(
        {
            11: _stats(11, 14, 3, 14, 25, drops=2),
            12: _stats(12, 50, 1, 50, 99),  # the agent's own thread: never shown
            13: _stats(13, 1, 0.5, 1, 1),
        },
        [GilWarning(11, "hold", 12_000_000, at), GilWarning(12, "wait", 5, at)],
        3,
        1,
        0,
    )
    event = report.event(before, after, names)
    assert report.next_at() == pytest.approx(started + 2.0)
    (row,) = event["threads"]  # max_threads 1: the longest holder
    assert row == {
        "tid": 11, "name": "web-1", "takes": 4, "wait_total_ms": 2.0, "wait_avg_ms": 0.5, "holds": 4,
        "hold_total_ms": 20.0, "hold_avg_ms": 5.0, "drops": 2, "drop_total_ms": 2.0, "drop_avg_ms": 1.0,
        "wait_max_ms": 3.0, "hold_max_ms": 25.0,
    }  # fmt: skip
    assert event["threads_hidden"] == 1 and event["threads_uncounted"] == 1 and event["warnings_more"] == 3
    assert event["cumulative"][0]["thread_name"] == "web-1" and event["cumulative"][0]["takecnt"] == 14
    assert event["warnings"] == [{"tid": 11, "name": "web-1", "kind": "hold", "ms": 12.0, "at": 0.25}]
    text = _text(event)
    assert text[0] == "GIL, 0 s to 1 s:"
    assert "web-1" in text[2] and "2.0 (0.50)" in text[2] and "20.0 (5.00)" in text[2]
    assert text[3:] == [
        "... 1 more threads (raise max_threads)",
        "warning: web-1 (11) held the GIL for 12.0 ms at 0.250 s",
        "... 3 more warnings",
    ]
    cumulative = _text({**event, "view": "cumulative"})
    assert cumulative[0] == "GIL since start (ns), at 1 s:"
    assert cumulative[1].split() == ["thread_name", *gil.SEEDS_COLUMNS, "tid"]
    assert cumulative[2].split() == [
        "web-1",
        "14",
        "25000000",
        "1785714",
        "3000000",
        "214285",
        "2",
        "2000000",
        "1000000",
        "11",
    ]
    empty = {**event, "threads": [], "cumulative": [], "threads_hidden": 0, "warnings": [], "warnings_more": 0}
    assert (
        _text(empty)[1] == "no thread took the GIL"
        and _text({**empty, "view": "interval"})[1] == "no thread took the GIL"
    )


def _text(event: dict[str, Any]) -> list[str]:
    out = io.StringIO()
    make_console(color=False, file=out, width=160).print(GILSTAT.render({"action": "report", **event}))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_start_stop_and_off_lines() -> None:
    def one(event: dict[str, Any]) -> str:
        out = io.StringIO()
        make_console(color=False, file=out, width=200).print(GILSTAT.render(event))
        return out.getvalue().strip()

    started = {
        "action": "started",
        "pid": 5,
        "hooked": 3,
        "library": "/usr/lib/libpython3.11.so",
        "interval": 5,
        "paused_threads": 7,
        "paused_ms": 3.25,
    }
    assert one(started) == (
        "gilstat on pid 5: 3 GIL functions hooked in /usr/lib/libpython3.11.so (its 7 threads paused 3.2 ms "
        "meanwhile); a report every 5 s (Ctrl-C or 'gilstat off' stops)"
    )
    assert (
        one({"action": "stopped", "reason": "Ctrl-C", "seconds": 2.26, "paused_ms": 4.0})
        == "gilstat stopped (Ctrl-C) after 2.3 s; hooks removed (threads paused 4.0 ms)"
    )
    unpaused = {"action": "stopped", "reason": "duration", "seconds": 1.0, "paused_ms": 0, "unpaused_rewrites": 1}
    assert one(unpaused) == (
        "gilstat stopped (duration) after 1.0 s; hooks removed (threads paused 0.0 ms); 1 of frida's code rewrites "
        "ran while the target's threads ran (they could not be kept stopped)"
    )
    assert one({"action": "off", "stopped": 0}) == "stopped 0 gilstat session(s)"
    assert (
        one({"action": "off", "stopped": 1, "hooks_removed": True})
        == "stopped 1 gilstat session(s); take_gil/drop_gil restored"
    )
    assert one({"action": "off", "stopped": 1, "hooks_removed": False}).endswith("STILL HOOKED")


def test_what_the_stop_waits_to_see_unmapped_is_fridas_own_memory() -> None:
    """The libraries frida's agent loaded stay mapped for the target's life: the first gilstat on a
    process waited its whole 4 s UNHOOK_WAIT for them at every stop (seen: ``-d 1`` stopped after 5 s)."""
    from flight_profiler.attach.procfs import MapEntry
    from flight_profiler.commands.gilstat.probe import frida_own

    def entry(start: int, perms: str, path: str) -> MapEntry:
        return MapEntry(start, start + 0x1000, perms, 0, 0 if not path else 7, path)

    maps = [
        entry(0x1000, "r-xp", "/usr/lib/libpython3.12.so.1.0"),  # there before frida
        entry(0x10000, "r-xp", "/memfd:frida-agent-64.so (deleted)"),
        entry(0x20000, "rwxp", ""),  # the loader's memory
        entry(0x30000, "r-xp", "/tmp/flight_profiler-gilstat-x/frida-1/frida-agent-64.so"),  # no memfd
        entry(0x40000, "r-xp", "/usr/lib/x86_64-linux-gnu/libpthread.so.0"),  # loaded by the agent: stays
        entry(0x50000, "r-xp", "/usr/lib/x86_64-linux-gnu/libdl.so.2 (deleted)"),
        entry(0x60000, "rw-p", ""),  # not code
    ]
    assert frida_own(maps, [(0x1000, 0x2000)]) == [(0x10000, 0x11000), (0x20000, 0x21000), (0x30000, 0x31000)]
