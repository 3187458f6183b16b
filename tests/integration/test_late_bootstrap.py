"""A bootstrap that runs late never spoils the next attach (issue 15's last defect).

A client SIGKILLed after it queued the bootstrap as a pending call leaves behind
its claim ticket, its bundle and a call the target runs whenever its main thread
next executes bytecode. Two things used to go wrong when that call ran during the
next attach:
(a) the late bootstrap took the next attempt's claim ticket (it had the same name)
    and, its own deadline passed, started nothing: the next attach failed;
(b) two bootstraps' threads loaded the agent at the same time, the second one
    picking up modules the first was still executing ("no attribute 'serve'").
(a) is driven here step by step with real processes: the killed client's state is
made by hand (ticket, bundle, a pending call queued with the real injector in a
main thread parked in select, so it waits), the next CLI attach is paused by the
injector's test hook after it issued its ticket, the late call is released by a
connection to the target, then the CLI goes on. (b): bootstraps with live tickets
started at once in a fresh interpreter; a hook on the bundle's open() holds the
first loader there until a second one arrives (or one second passed): with one
loader per process none ever does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Iterator, List

import pytest

from flight_profiler.attach import bootstrap, bundle, paths, privsep, procfs, ptrace, ticket
from flight_profiler.attach.attacher import AttachOptions, connect
from flight_profiler.attach.injector import Phase
from flight_profiler.attach.target import inspect
from interpreters import find_interpreters, spot_interpreters
from kill_support import Served, cli_attach_argv, client_env, process_state
from support import wait_until

INTERPRETERS = find_interpreters()
IDS = [i for i, _ in INTERPRETERS]

pytestmark = pytest.mark.skipif(not INTERPRETERS, reason="no CPython interpreters found")


@pytest.fixture
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield str(tmp_path_factory.mktemp("late"))


def _names(pid: int, prefix: str) -> List[str]:
    """Our files starting with ``prefix`` in the target's private directory (read-only look)."""
    target = inspect(pid)
    return sorted(n for n in os.listdir(paths.from_client(target, paths.private_dir(target))) if n.startswith(prefix))


def _killed_client(pid: int, ran: str) -> str:
    """What a client killed at DONE leaves: its ticket, the bundle, its bootstrap queued; returns the ticket."""
    target = inspect(pid)
    claim = ticket.new_name(paths.stem(target))
    with privsep.start(target, paths.private_dir(target)) as helper:
        helper.call("open_dir", create=True)
        helper.call("write", name=paths.stem(target) + ".bundle", text=bundle.text())
        helper.call("ticket_issue", name=claim)
    # its deadline passes before the call runs (a client given --timeout 1): the old bootstrap then took
    # the next attempt's ticket and started nothing
    late = bootstrap.source(paths.socket_in_target(target), time.time() + 1.0, claim)
    ptrace.inject(pid, late, mode="pending", timeout=20.0)
    # FIFO behind it: proves the late bootstrap has run once this has
    ptrace.inject(pid, ptrace.wrap_bootstrap("with open(%r, 'a') as f:\n    f.write('ran\\n')\n" % ran), mode="pending")
    return claim


def _parked(pid: int) -> bool:
    state = procfs.read_thread_state(pid, pid)
    return state is not None and state.syscall is not None


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_late_bootstrap_never_takes_the_next_attempts_ticket(interp: str, python: str, tmp: str) -> None:
    served = Served(python, "select", tmp)  # main thread parked in select: a pending call waits for a connection
    client = None
    try:
        stale = _killed_client(served.pid, served.ran)
        time.sleep(1.5)  # the killed client's deadline passes (setup, not an assertion)
        assert served.runs() == 0, "the queued calls ran before the next attach began"
        client = subprocess.Popen(
            [*cli_attach_argv(served.pid, "getglobal __main__ BEAT"), "--json", "--debug"],
            env=client_env(FLIGHT_PROFILER_TEST_PAUSE_AT=Phase.PREPARE.name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # paused after it issued its own ticket, before it touches the target
        assert wait_until(lambda: client.poll() is not None or process_state(client.pid) == "T", timeout=60)
        assert client.poll() is None, client.communicate()
        assert served.serve_once()  # the main thread runs bytecode: the late bootstrap runs now
        assert wait_until(lambda: served.runs() == 1, timeout=20), "the queued calls never ran"
        # back in its select before the client looks: caught on its way there, the client queues its call
        # (the path of the test below; in CI's full run it once did)
        assert wait_until(lambda: _parked(served.pid), timeout=20)
        os.kill(client.pid, signal.SIGCONT)
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, (out[-2000:], err[-2000:])
        assert json.loads(out.splitlines()[-1]).get("type") != "error", out
        stem = paths.stem(inspect(served.pid))
        assert _names(served.pid, stale) == []  # withdrawn by the next attempt, never claimed by anyone
        assert _names(served.pid, stem + ticket.MARK) == []  # the next attempt's was claimed by its agent
        assert _names(served.pid, stem + ".sock.log") == []  # no bootstrap failed
        assert served.harm() == []
        assert served.attach_harm() == []
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait(30)
        served.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("interp", "python"), spot_interpreters(), ids=[i for i, _ in spot_interpreters()])
def test_a_main_thread_that_parked_after_the_call_was_queued_runs_the_bootstrap_itself(
    interp: str, python: str, tmp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main thread was running when the bootstrap was queued (the client saw it between two
    selects) and parked again without passing a safe point; it is the target's only thread. The
    fallback used to look at the other threads only and the attach failed ("reached no safe point");
    it now runs the bootstrap in the main thread, parked, and the queued call later starts nothing."""
    served = Served(python, "select", tmp)
    real_inject = ptrace.inject

    def queued_first(pid: int, source: str, **kwargs: object) -> object:
        if kwargs.get("mode", "auto") == "auto":  # the client's own pick: as if the main thread were running
            kwargs["mode"] = "pending"
        return real_inject(pid, source, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ptrace, "inject", queued_first)
    try:
        assert wait_until(lambda: _parked(served.pid), timeout=20)
        notes: List[str] = []
        conn = connect(served.pid, AttachOptions(timeout=30, log=notes.append))
        try:
            assert any("bootstrap ran in thread %d" % served.pid in n for n in notes), notes
            stem = paths.stem(inspect(served.pid))
            assert _names(served.pid, stem + ".sock.log") == []
        finally:
            conn.detach(30)
        assert served.harm() == []  # serves a connection: the queued call runs now, and harms nothing
        assert served.attach_harm() == []
    finally:
        served.stop()


# In a fresh interpreter: BOOTSTRAPS sources with live tickets, exec'd by as many threads at once.
CONCURRENT = r"""
import json, os, posix, sys, threading, time
sources, bundle_path, sock, tickets = json.loads(sys.argv[1])
real_open = open
real_os_open = posix.open  # the bootstrap opens the bundle with posix.open (no io layer; eventlet patches os.open)
state = {"inside": 0, "most": 0, "opened": 0}
lock = threading.Lock()

def holding_open(file, *args, **kwargs):
    if file != bundle_path:
        return real_os_open(file, *args, **kwargs)
    with lock:
        state["inside"] += 1
        state["opened"] += 1
        state["most"] = max(state["most"], state["inside"])
    try:
        end = time.time() + 1.0  # a second loader would arrive meanwhile
        while time.time() < end and state["inside"] < 2:
            time.sleep(0.01)
        return real_os_open(file, *args, **kwargs)
    finally:
        with lock:
            state["inside"] -= 1

posix.open = holding_open
barrier = threading.Barrier(len(sources))
def run(source):
    barrier.wait()
    exec(source)
starters = [threading.Thread(target=run, args=(s,)) for s in sources]
for t in starters:
    t.start()
for t in starters:
    t.join()
def settled():
    claims = [n for n in os.listdir(os.path.dirname(sock)) if any(n.startswith(t) for t in tickets)]
    agents = [t for t in threading.enumerate() if t.name == "flight_profiler-agent"]
    return os.path.exists(sock) and not claims and len(agents) == 1
deadline = time.time() + 60
while not settled() and time.time() < deadline:
    time.sleep(0.02)
posix.open = real_os_open
server = sys.modules.get("_flight_profiler.agent.server")
guard = sys.modules.get("_flight_profiler._guard")
print(json.dumps({
    "settled": settled(),
    "running": bool(server and server.running()),
    "opened": state["opened"],
    "most": state["most"],
    "guard": type(guard).__name__,
    "log": os.path.exists(sock + ".log") and real_open(sock + ".log").read(),
    "public": [n for n in sys.modules if "flight_profiler" in n and not n.startswith("_flight_profiler")],
}))
"""

BOOTSTRAPS = 3


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_concurrent_bootstraps_load_the_agent_once(interp: str, python: str, tmp: str) -> None:
    workspace = privsep.Workspace(os.path.join(tmp, "fp"), in_process=True)
    workspace.op_open_dir(create=True)
    sock = os.path.join(workspace.directory, "agent-1.sock")
    workspace.op_write(os.path.basename(bootstrap.bundle_path(sock)), bundle.text())
    sources, tickets = [], []
    for _ in range(BOOTSTRAPS):
        claim = ticket.new_name("agent-1")
        tickets.append(claim)
        sources.append(bootstrap.source(sock, time.time() + 120, claim))
    workspace.op_ticket_issue(tickets[0])
    for claim in tickets[1:]:  # issued by hand: ticket_issue withdraws the others (one attempt at a time)
        with open(os.path.join(workspace.directory, claim), "x"):
            pass
    proc = subprocess.run(
        [python, "-c", CONCURRENT, json.dumps([sources, bootstrap.bundle_path(sock), sock, tickets])],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["log"] is False, found["log"]  # no bootstrap failed ("no attribute 'serve'")
    assert found["settled"] and found["running"], found
    assert (found["opened"], found["most"]) == (1, 1), found  # one loader; the others reused its modules
    assert found["guard"] == "module" and found["public"] == [], found


def test_ticket_issue_withdraws_every_other_ticket_of_the_stem(tmp: str) -> None:
    """The next attempt takes back a killed client's ticket in each of its states; other stems are left alone."""
    workspace = privsep.Workspace(os.path.join(tmp, "fp"), in_process=True)
    workspace.op_open_dir(create=True)
    directory = workspace.directory
    old = [ticket.new_name("agent-1") for _ in range(3)]
    for name, suffix in zip(old, ("", ticket.CLAIMED_SUFFIX, ticket.NOFD_SUFFIX)):
        with open(os.path.join(directory, name + suffix), "x"):
            pass
    other = ticket.new_name("agent-2")
    with open(os.path.join(directory, other), "x"):
        pass
    fresh = ticket.new_name("agent-1")
    assert fresh not in old
    workspace.op_ticket_issue(fresh)
    assert sorted(os.listdir(directory)) == sorted([fresh, other])
