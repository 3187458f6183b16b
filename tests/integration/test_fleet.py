"""One command over a group: a prefork server (master + 4 forked workers) and a torchrun-like
launcher (4 spawned ranks with RANK set), through the real CLI, attaching for real."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from interpreters import find_interpreters, spot_interpreters
from json_schemas import problems
from support import TARGETS, CliResult

INTERPRETERS = find_interpreters()
WORKERS = 4


class Group:
    """A launcher and its workers, started from ``script``; ``pids`` are the workers'."""

    def __init__(self, python: str, script: str, *args: str) -> None:
        # A tag of its own, first on the command line (the scripts ignore it): a --select of one test
        # must never match another test's group (another worker's, another checkout's). An untagged
        # "ps_prefork.py --workers 4" selected every group on the machine, and its attaches into a
        # group in the middle of another test's command broke that test ("the agent started but did
        # not answer"; the Ctrl-C test's client hung for 60 s after its Ctrl-C).
        self.tag = "fleet%s" % uuid.uuid4().hex[:12]
        self.proc = subprocess.Popen(
            [python, os.path.join(TARGETS, script), "--tag", self.tag, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=TARGETS,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), line
        self.workers = [int(pid) for pid in line.split()[2].split(",")]

    @property
    def master(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        fleet("--tree", str(self.master), "--cmd", "detach")
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def fleet(*words: str, timeout: float = 90.0, script: str | None = None) -> CliResult:
    """``flight_profiler WORDS``; ``script``: commands on its stdin (no --cmd)."""
    argv = [sys.executable, "-m", "flight_profiler", *words]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, input=script)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def fleet_line(result: CliResult) -> dict[str, Any]:
    for record in result.records:
        assert problems(record) == [], record  # docs/schema/envelope.json and the command's own schema
    [line] = [record["fleet"] for record in result.records if "fleet" in record]
    return line  # type: ignore[no-any-return]


# The group layer is the client's (selection, merging, the gate, Ctrl-C): the oldest and the newest
# interpreter prove it attaches for real. Attaching to a forked worker on every interpreter is
# test_ps.py's (test_attachable_means_attach_works_and_agent_is_reported), each command's agent side
# on every interpreter test_commands.py's and its neighbours'.
EDGES = spot_interpreters()  # the any_interpreter tier's: oldest and newest (tests/interpreters.py)


@pytest.fixture(scope="module", params=EDGES, ids=[i for i, _ in EDGES])
def python(request: pytest.FixtureRequest) -> str:
    return str(request.param[1])


@pytest.fixture
def prefork(python: str) -> Iterator[Group]:
    group = Group(python, "ps_prefork.py", "--workers", str(WORKERS))
    yield group
    group.stop()


@pytest.fixture
def ranks(python: str) -> Iterator[Group]:
    group = Group(python, "fleet_ranks.py", "--ranks", str(WORKERS), "--odd", "2")
    yield group
    group.stop()


def _env(pid: int) -> dict[str, str]:
    with open("/proc/%d/environ" % pid, "rb") as fh:
        items = [item.decode().partition("=") for item in fh.read().split(b"\0") if b"=" in item]
    return {key: value for key, _, value in items}


def test_tree_finds_the_master_and_every_worker_and_each_line_carries_its_target(prefork: Group) -> None:
    result = fleet("--tree", str(prefork.master), "--cmd", "getglobal __main__ STATE -e \"target['role']\"", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    targets = {record["target"]["pid"]: record for record in result.records if "result" in record}
    assert set(targets) == {prefork.master, *prefork.workers}
    assert targets[prefork.master]["target"] == {
        "pid": prefork.master,
        "ppid": os.getpid(),
        "role": "master",
        "rank": None,
    }
    for pid in prefork.workers:
        assert targets[pid]["target"]["role"] == "worker" and targets[pid]["target"]["ppid"] == prefork.master
        assert targets[pid]["result"]["value"]["v"] == "worker"  # the worker's own STATE
    assert targets[prefork.master]["result"]["value"]["v"] == "master"
    summary = fleet_line(result)
    assert sorted(summary["ok"]) == sorted([prefork.master, *prefork.workers]) and summary["failed"] == []


def test_a_script_on_stdin_runs_each_command_over_the_group(prefork: Group) -> None:
    script = "getglobal __main__ STATE -e \"target['role']\"\n# next\nmodule /x.py\ndetach\nmodule /y.py\n"
    result = fleet("--tree", str(prefork.master), "--json", script=script)
    assert result.returncode == 0, (result.stdout, result.stderr)
    members = {prefork.master, *prefork.workers}
    done = [(r["command"], r["target"]["pid"]) for r in result.records if "result" in r]
    assert {pid for command, pid in done if command == "getglobal"} == members
    assert {pid for command, pid in done if command == "module"} == members  # each member, in order
    assert [r["fleet"]["ok"] for r in result.records if "fleet" in r][-1]  # the detach's own summary
    assert "/y.py" not in result.stdout  # the detach ended the script: nothing attached again
    assert "detached" in result.stderr


def test_ranks_are_read_from_the_environment(ranks: Group) -> None:
    result = fleet("--tree", str(ranks.master), "--cmd", "getglobal os environ -e 'target.get(\"RANK\")'", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    seen = {record["target"]["pid"]: record for record in result.records if "result" in record}
    assert set(ranks.workers) <= set(seen)
    for pid in ranks.workers:
        target, value = seen[pid]["target"], seen[pid]["result"]["value"]["v"]
        assert target["role"] == "worker" and target["rank"] == int(value) == int(_env(pid)["RANK"])
    assert seen[ranks.master]["target"]["role"] == "master" and seen[ranks.master]["target"]["rank"] is None


def test_stack_merges_identical_workers_and_names_the_outlier(ranks: Group) -> None:
    odd = next(pid for pid in ranks.workers if _env(pid)["RANK"] == "2")
    result = fleet("--tree", str(ranks.master), "--cmd", "stack", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    merged = fleet_line(result)["merged"]
    assert [item["pid"] for item in merged["outliers"]] == [odd], merged
    assert "3 of 4 workers in `wait_for_work`" in merged["summary"]
    assert "pid %d (rank 2) in `slow_collective`" % odd in merged["summary"]
    text = fleet("--tree", str(ranks.master), "--cmd", "stack", "--no-color")
    assert text.returncode == 0, text.stderr
    assert "3 of 4 workers in `wait_for_work`" in text.stdout and "[1] pid %d" % odd in text.stdout
    assert text.stdout.count("Thread MainThread") == 1  # one merged tree, not one dump per process


def test_mem_summary_marks_the_worker_that_holds_more(ranks: Group) -> None:
    odd = next(pid for pid in ranks.workers if _env(pid)["RANK"] == "2")
    result = fleet("-p", ",".join(map(str, ranks.workers)), "--cmd", "mem summary --limit 40", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    merged = fleet_line(result)["merged"]
    [outlier] = merged["outliers"]
    assert outlier["pid"] == odd and any(name.endswith(".Hoard") for name in outlier["types"])
    hoard = next(row for row in merged["types"] if row["type"].endswith(".Hoard"))
    assert hoard["counts"][str(odd)] >= 20000 and set(hoard["counts"]) == {str(odd)}  # the others hold none
    text = fleet("-p", ",".join(map(str, ranks.workers)), "--cmd", "mem summary --limit 40", "--no-color")
    assert "pid %d stands out" % odd in text.stdout and "(outlier)" in text.stdout


def test_watch_per_target_with_a_combined_summary(ranks: Group) -> None:
    pids = ",".join(map(str, ranks.workers))
    result = fleet("-p", pids, "--cmd", "watch __mp_main__ tick -n 2", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    calls: dict[int, int] = {}
    for record in result.records:
        if "index" in record.get("result", {}):
            calls[record["target"]["pid"]] = calls.get(record["target"]["pid"], 0) + 1
    assert calls == dict.fromkeys(ranks.workers, 2)
    assert fleet_line(result)["merged"]["shown"] == {str(pid): 2 for pid in ranks.workers}
    text = fleet("-p", pids, "--cmd", "watch __mp_main__ tick -n 1", "--no-color")
    assert "watch over 4 processes: 4 call(s) shown" in text.stderr, text.stderr
    assert all("pid %d rank" % pid in text.stdout for pid in ranks.workers)  # each under its header


def test_all_selects_every_attachable_python_process(prefork: Group) -> None:
    from flight_profiler.fleet.select import Selection, select

    pids = {target.pid for target in select(Selection(everything=True))}
    assert {prefork.master, *prefork.workers} <= pids and os.getpid() not in pids


def test_a_worker_killed_mid_command_fails_alone(prefork: Group) -> None:
    victim = prefork.workers[1]
    argv = [sys.executable, "-m", "flight_profiler", "--tree", str(prefork.master), "--cmd", "mem diff -i 10", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    firsts: set[int] = set()
    lines = []
    while len(firsts) < WORKERS + 1:  # every target took its first snapshot: the command is running everywhere
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        lines.append(line)
        record = json.loads(line)
        if record.get("result", {}).get("phase") == "first":
            firsts.add(record["target"]["pid"])
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    result = CliResult(proc.returncode, "".join(lines) + out, err)
    assert result.returncode == 1, (result.stdout, result.stderr)
    errors = [record for record in result.records if "error" in record]
    assert [record["target"]["pid"] for record in errors] == [victim]
    # cli/runner.py's _why_lost races the kernel: the victim's socket closes before /proc shows it
    # exiting, so "detached by another client" is sometimes said of a killed target (reported)
    assert "exited" in errors[0]["error"] or "detached by another client" in errors[0]["error"]
    finished = {
        record["target"]["pid"]
        for record in result.records
        if record.get("result", {}).get("phase") != "first" and "result" in record
    }
    assert finished == {prefork.master, *prefork.workers} - {victim}
    assert [item["pid"] for item in fleet_line(result)["failed"]] == [victim]


def test_a_pid_that_is_not_python_fails_alone(prefork: Group) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        result = fleet("-p", "%d,%d" % (prefork.workers[0], sleeper.pid), "--cmd", "getglobal __main__ STATE", "--json")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 1
    assert [record["target"]["pid"] for record in result.records if "result" in record] == [prefork.workers[0]]
    [error] = [record for record in result.records if "error" in record]
    assert error["target"]["pid"] == sleeper.pid and "not a Python process" in error["error"]


def test_mem_summary_side_by_side(prefork: Group) -> None:
    result = fleet("--tree", str(prefork.master), "--cmd", "mem summary --limit 5", "--no-color")
    assert result.returncode == 0, result.stderr
    assert "mem summary over 5 processes" in result.stdout
    for pid in [prefork.master, *prefork.workers]:
        assert "pid %d" % pid in result.stdout


def test_select_by_command_line_and_bad_selections(prefork: Group) -> None:
    result = fleet(
        "--select",
        "ps_prefork\\.py --tag %s --workers %d" % (prefork.tag, WORKERS),
        "--cmd",
        "getglobal __main__ WORKERS",
        "--json",
    )
    pids = {record["target"]["pid"] for record in result.records if "result" in record}
    assert {prefork.master, *prefork.workers} <= pids, result.stderr
    bad = fleet("--select", "(", "--cmd", "stack", "--json")
    assert bad.returncode == 2 and "not a regular expression" in bad.errors[0]
    bad = fleet("-p", "12,x", "--cmd", "stack", "--json")
    assert bad.returncode == 2 and "-p takes pids" in bad.errors[0]


def test_the_shell_switches_between_the_group_and_one_member(tmp_path: object) -> None:
    import pexpect

    group = Group(INTERPRETERS[-1][1], "ps_prefork.py", "--workers", "2")
    env = dict(os.environ, HOME=str(tmp_path), NO_COLOR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "flight_profiler", "--tree", str(group.master)],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect_exact("flight_profiler[all 3]>")
        child.sendline("getglobal __main__ STATE -e \"target['role']\"")
        child.expect_exact("getglobal on 3 process(es): 3 ok")
        child.sendline("use %d" % group.workers[1])
        child.expect_exact("flight_profiler[%d]>" % group.workers[1])
        child.sendline("getglobal __main__ STATE -e \"target['role']\"")
        child.expect_exact("'worker'")
        child.expect_exact("flight_profiler[%d]>" % group.workers[1])
        child.sendline("use 1")
        child.expect_exact("1 is not in the group")
        child.sendline("use all")
        child.expect_exact("flight_profiler[all 3]>")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        group.stop()


def _stacks(pid: int) -> str:
    """A stuck client's threads, innermost frame first, read from outside by py-spy."""
    from flight_profiler.readers import pyspy

    try:
        threads = pyspy.dump(pid)
    except Exception as exc:  # only a failure message is at stake
        return "(no stacks: %s)" % exc
    return "\n".join(
        "%s: %s"
        % (
            thread.get("thread_name") or thread.get("thread_id"),
            " <- ".join(
                "%s (%s:%s)" % (frame.get("name"), os.path.basename(str(frame.get("filename"))), frame.get("line"))
                for frame in thread.get("frames", [])[:12]
            ),
        )
        for thread in threads
    )


def test_ctrl_c_cancels_the_command_on_every_member(prefork: Group) -> None:
    argv = [
        sys.executable,
        "-m",
        "flight_profiler",
        "--tree",
        str(prefork.master),
        "--cmd",
        "mem diff -i 600",
        "--json",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    firsts: set[int] = set()
    while len(firsts) < WORKERS + 1:  # every member is inside its 600 s interval
        line = proc.stdout.readline()
        assert line, proc.communicate()
        record = json.loads(line)
        # a member that failed before its interval (an attach that timed out under load, say) says so
        # here, rather than as an exit status of 1 after the Ctrl-C
        if "result" not in record:
            proc.kill()
            pytest.fail("a member failed before its interval: %s\nstderr:\n%s" % (line, proc.communicate()[1]))
        firsts.add(record["target"]["pid"])
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)  # far less than the 600 s interval: the jobs were cancelled
    except subprocess.TimeoutExpired:
        stacks = _stacks(proc.pid)
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(
            "Ctrl-C did not end the client in 60 s; its threads:\n%s\nstdout:\n%s\nstderr:\n%s" % (stacks, out, err)
        )
    unwanted = [line for line in out.splitlines() if '"phase": "done"' in line or '"error"' in line]
    said = "exit %s; stderr:\n%s\nstdout's done/error lines:\n%s" % (proc.returncode, err, "\n".join(unwanted))
    assert proc.returncode == 0, said
    assert err.count("cancelled") == WORKERS + 1, said
    assert not unwanted, said


@pytest.mark.parametrize(("name", "python"), EDGES, ids=lambda v: str(v))
def test_group_gate_is_held_exactly_while_the_tracer_stops_the_target(
    name: str, python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's cap counts stopped targets: the gate is held around the tracer, not the whole attach.

    Held for the whole attach, 32 attaches took 4 rounds of agent starts; held for less, more
    than ``--concurrency`` targets could be stopped at once. The tracer (the injector's only
    code that stops the thread) must run inside the gate, and the agent's start outside it.
    """
    from flight_profiler.attach.attacher import AttachOptions, connect
    from flight_profiler.attach.injector import session as injector_session
    from support import start_target

    held: list[str] = []
    inside: list[bool] = []
    trace = injector_session.Session.trace

    def traced(self: Any) -> None:
        inside.append(held[-1:] == ["enter"])
        trace(self)

    monkeypatch.setattr(injector_session.Session, "trace", traced)

    @contextlib.contextmanager
    def stopping() -> Iterator[None]:
        held.append("enter")
        try:
            yield
        finally:
            held.append("exit")

    target = start_target(python, "service_target.py", "sleep")
    try:
        options = AttachOptions(timeout=30)
        options.stopping = stopping
        conn = connect(target.pid, options)
        try:
            assert held == ["enter", "exit"] and inside == [True], (held, inside)
            assert conn.run("module", {"path": "/x"}, timeout=30)  # the agent answers: it started outside the gate
        finally:
            conn.detach(30)
    finally:
        target.stop()
