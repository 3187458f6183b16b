"""``mem``: objects by type, growth over an interval, allocating lines, on a live asyncio target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from inproc_client import client
from interpreters import find_interpreters
from support import RunningTarget, target_fixture, wait_until

INTERPRETERS = find_interpreters()
INITIAL, GROW = 3000, 1234  # as in tests/targets/prof_mem_target.py
LEAF = "__main__.Leaf"


target = target_fixture("prof_mem_target.py", healthy=True)  # the asyncio loop still answers SIGUSR1


def only(result: object) -> dict:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    results = result.results  # type: ignore[attr-defined]
    assert len(results) == 1, results
    return results[0]


def stats(target: RunningTarget) -> dict:
    value = only(client(target.pid, 'console -c "import __main__; dict(__main__.STATS)"'))["value"]
    return eval(value)  # a dict of numbers, printed by the target


def console_value(target: RunningTarget, source: str) -> str:
    return only(client(target.pid, "console -c %s" % json.dumps(source)))["value"]


def rows(event: dict) -> dict[str, dict]:
    return {row["type"]: row for row in event["types"]}


def test_summary_counts_the_instances_of_a_class(target: RunningTarget) -> None:
    expected = INITIAL + GROW * stats(target)["grown"]
    event = only(client(target.pid, "mem summary --limit 10000"))
    leaf = rows(event)[LEAF]
    assert leaf["count"] == expected and leaf["size"] > 0
    assert event["objects"] >= sum(row["count"] for row in event["types"]) > expected
    assert event["size"] >= sum(row["size"] for row in event["types"])
    assert not any(row["type"].startswith("_flight_profiler") for row in event["types"])  # not our own objects
    sizes = [row["size"] for row in event["types"]]
    assert sizes == sorted(sizes, reverse=True)
    smallest = only(client(target.pid, "mem summary --limit 5 --order ascending"))["types"]
    assert len(smallest) == 5 and [row["size"] for row in smallest] == sorted(row["size"] for row in smallest)


def test_diff_shows_exactly_the_growth_made_during_the_interval(target: RunningTarget) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "mem diff -i 2 --limit 10000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())["result"]
    assert first["phase"] == "first" and first["interval"] == 2
    os.kill(target.pid, signal.SIGUSR2)  # the loop adds GROW Leaf objects, once, between the two walks
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    done = json.loads(out.splitlines()[-1])["result"]
    assert done["phase"] == "done"
    leaf = rows(done)[LEAF]
    assert leaf["count"] == GROW and leaf["size"] > 0
    assert done["count_change"] == done["objects"] - first["objects"]


def test_top_finds_the_allocating_line_and_leaves_tracing_off(target: RunningTarget) -> None:
    event = only(client(target.pid, "mem top -i 1 --limit 50"))
    assert event["already_tracing"] is False and event["size"] > 0
    mine = [line for line in event["lines"] if line["file"].endswith("prof_mem_target.py")]
    assert any("KNOWN_ALLOCATION" in line["source"] and line["size"] >= 2048 for line in mine), event["lines"]
    assert not any("flight_profiler" in line["file"] for line in event["lines"])
    assert console_value(target, "import tracemalloc; tracemalloc.is_tracing()") == "False"


def test_top_leaves_the_users_tracing_on(target: RunningTarget) -> None:
    console_value(target, "import tracemalloc; tracemalloc.start()")
    try:
        event = only(client(target.pid, "mem top -i 0.5"))
        assert event["already_tracing"] is True
        assert console_value(target, "import tracemalloc; tracemalloc.is_tracing()") == "True"
    finally:
        console_value(target, "import tracemalloc; tracemalloc.stop()")


def test_ctrl_c_stops_top_and_tracing(target: RunningTarget) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "mem top -i 60", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ctrl-C once the job traces (the client is then inside its read): a fixed wait can land in the
    # client's imports on a loaded machine, where Ctrl-C is a traceback, not a cancel
    assert wait_until(lambda: console_value(target, "import tracemalloc; tracemalloc.is_tracing()") == "True")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert "cancelled" in err, (out, err)
    assert console_value(target, "import tracemalloc; tracemalloc.is_tracing()") == "False"


def test_asyncio_loop_keeps_running_through_repeated_commands(target: RunningTarget) -> None:
    """8 mem commands in a row, each kind at least twice (one connection, as a shell would); the loop must
    keep ticking. Each summary walks the whole heap: more rounds cost seconds on every interpreter, not proof."""
    from flight_profiler.attach.attacher import AttachOptions, connect

    before = stats(target)["ticks"]
    conn = connect(target.pid, AttachOptions())
    seen = []
    try:
        for index in range(8):
            kind = ("summary", "summary", "diff", "top")[index % 4]
            request: dict = {"action": kind, "limit": 5, "order": "descending"}
            if kind != "summary":
                request["interval"] = 0.2
            events = conn.run("mem", request, timeout=60)
            assert events and events[-1]["action"] == kind
            seen.append(kind)
    finally:
        conn.close()
    after = stats(target)
    assert seen.count("summary") == 4 and len(seen) == 8
    assert after["ticks"] > before, after  # the loop ran on through all of them
    print("longest gap between ticks so far: %.1f ms" % (after["max_gap"] * 1000))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("mem summary --limit 0", "--limit must be"),
        ("mem summary -i 3", "takes no --interval"),
        ("mem diff -i 0", "-i must be > 0 and <= 3600, got '0'"),
        ("mem diff --interval inf", "-i must be a finite number"),
        ("mem everything", "invalid choice"),
    ],
)
def test_bad_input_is_one_line(command: str, message: str) -> None:
    result = client(os.getpid(), command)
    assert result.returncode != 0
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr
