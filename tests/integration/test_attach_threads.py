"""Attach on a target whose many busy threads fight for the GIL (issue 14, goal 3).

How long it takes is the benchmark's business (bench/attach.py, bench/attach_gil_trips.py);
these tests check that it never fails, that serving a client's handshake on the listener's own
thread (to spare the busy target a thread start before the first answer) never keeps the next
client out, that the client that injected cleans up after itself when it is killed while its
session is stuck or idle, and that the shorter switch interval of the agent's start (attach/bootstrap.SWITCH_BOOST)
is undone by the target itself on every path, an interval the app set meanwhile kept.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import pytest

from flight_profiler.agent.session import MAX_STUCK_THREADS
from flight_profiler.attach.attacher import AttachOptions, connect
from flight_profiler.attach.bootstrap import SWITCH_BOOST, SWITCH_BOOST_MAX_THREADS
from flight_profiler.attach.paths import agent_socket
from flight_profiler.errors import CommandError
from interpreters import find_interpreters
from kill_support import cli_attach_argv, client_env
from support import RunningTarget, agent_threads, cli, start_target, wait_until

INTERPRETERS = find_interpreters()
PICK = [INTERPRETERS[0], INTERPRETERS[-1]]
NEWEST = INTERPRETERS[-1][1]


@pytest.mark.parametrize(("name", "python"), PICK, ids=[i for i, _ in PICK])
def test_first_attach_on_200_threads_100_busy_succeeds(name: str, python: str) -> None:
    """Every GIL wait of the agent's start queues behind 100 busy threads: the client waits for it
    as long as --timeout allows (a fixed 2 s handshake failed one such attach in two)."""
    target = start_target(python, "service_target.py", "threadsbusy", "200")
    try:
        result = cli(target.pid, "module /x", "--timeout", "120", timeout=180)
        assert result.returncode == 0, result.stderr
        assert result.results[0] == {"path": "/x", "modules": []}
        again = cli(target.pid, "module /y", "--timeout", "120", timeout=180)  # the running agent, a session thread
        assert again.returncode == 0, again.stderr
        assert cli(target.pid, "detach", "--timeout", "120", timeout=180).returncode == 0
        assert target.healthy("threadsbusy", timeout=60), "target did not exit 0 on SIGUSR1 after detach"
    finally:
        target.stop()


@pytest.mark.parametrize("sends", [b"", b'{"type":"hello"'], ids=["nothing", "half a hello"])
def test_a_silent_client_does_not_keep_the_next_one_out(sends: bytes) -> None:
    """The listener serves a new client's handshake itself, each step for at most a second."""
    target = start_target(NEWEST, "service_target.py", "event")
    try:
        assert cli(target.pid, "module /x").returncode == 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
            silent.connect(agent_socket(target.pid))
            silent.sendall(sends)
            result = cli(target.pid, "module /y", "--timeout", "30", timeout=60)
            assert result.returncode == 0, result.stderr
            assert result.results[0]["path"] == "/y"
        assert cli(target.pid, "detach").returncode == 0
        assert target.healthy("event")
    finally:
        target.stop()


def test_a_repr_blocked_in_c_keeps_no_later_client_out() -> None:
    """A quick command (getglobal) whose capture calls a __repr__ that blocks in C for good: the
    session running it is stuck, the listener is not. A first version answered a client's first
    request on the listener's thread, and then no client could connect again, detach included."""
    target = start_target(NEWEST, "hang_repr_target.py")
    stuck = None
    try:
        assert cli(target.pid, "module /x").returncode == 0  # the agent is in
        argv = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "getglobal __main__ OBJ -r"]
        stuck = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert target.proc.stdout is not None
        assert target.proc.stdout.readline() == "in repr\n"  # the session is in it, blocked
        result = cli(target.pid, "module /y", "--timeout", "20", timeout=60)
        assert result.returncode == 0, result.stderr
        detached = cli(target.pid, "detach", "--timeout", "20", timeout=60, json_output=False)
        assert detached.returncode == 0, detached.stderr
    finally:
        if stuck is not None:
            stuck.kill()
            stuck.wait()
        os.kill(target.pid, signal.SIGUSR1)  # lets the __repr__ return, so the agent's thread can end
        target.stop()


def test_a_first_client_stuck_in_a_repr_then_killed_keeps_nobody_out_and_leaves_nothing() -> None:
    """The client that injected runs a quick command whose capture blocks in a __repr__ in C. Later
    clients get in, detach included; the first client is SIGKILLed meanwhile; once the __repr__
    returns, no thread or socket of ours is left, and the target can be attached again."""
    target = start_target(NEWEST, "hang_repr_target.py")
    first = None
    try:
        assert target.proc.stdout is not None
        argv = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "getglobal __main__ OBJ -r"]
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=client_env())
        assert target.proc.stdout.readline() == "in repr\n"  # the first session is in it
        result = cli(target.pid, "module /y", "--timeout", "20", timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.results[0]["path"] == "/y"
        first.kill()
        first.wait()
        detached = cli(target.pid, "detach", "--timeout", "20", timeout=60, json_output=False)
        assert detached.returncode == 0, detached.stderr
        os.kill(target.pid, signal.SIGUSR1)  # the __repr__ returns: the first session sees its client gone
        assert wait_until(lambda: not agent_threads(target.pid), timeout=60), agent_threads(target.pid)
        assert not os.path.exists(agent_socket(target.pid))
        assert cli(target.pid, "module /z", "--timeout", "30", timeout=60).returncode == 0  # attaches again
        assert cli(target.pid, "detach").returncode == 0
    finally:
        if first is not None and first.poll() is None:
            first.kill()
            first.wait()
        target.stop()


# 3.11's watchdog posts its stops briefly and again (services/watchdog._FREEZES_TRACED): its own path
STALL_PICK = PICK[:1] + [(n, p) for n, p in INTERPRETERS if n == "3.11"][:1] + PICK[-1:]
GETGLOBAL_OBJ = {"module": "__main__", "cls": None, "field": "OBJ", "expr": None, "budget_ms": 300}


@pytest.mark.parametrize(("name", "python"), STALL_PICK, ids=[i for i, _ in STALL_PICK])
def test_a_quick_command_blocked_in_c_fails_after_its_budget_and_its_session_goes_on(name: str, python: str) -> None:
    """A quick command runs on its session's reader; its capture calls a __repr__ that blocks in C
    (no stop can end it). Past the budget the client gets a one-line error naming where it is
    blocked, and the same session answers the next request on a new reader. After three such
    readers quick commands are refused at once; the detach names them and does not wait; once
    the __repr__s return, nothing of ours is left."""
    target = start_target(python, "hang_repr_target.py")
    try:
        conn = connect(target.pid, AttachOptions(timeout=60))
        try:
            for left in range(MAX_STUCK_THREADS, 0, -1):
                with pytest.raises(CommandError) as stuck:
                    conn.run("getglobal", dict(GETGLOBAL_OBJ), timeout=60)
                said = str(stuck.value)
                assert "getglobal: the program's code it called is still blocked outside Python" in said, said
                assert "hang_repr_target.py:" in said and "in __repr__" in said, said
                assert "\n" not in said, said
                if left > 1:  # the same session, on its next reader
                    assert conn.run("module", {"path": "/x"}, timeout=60) == [{"path": "/x", "modules": []}]
            with pytest.raises(CommandError) as refused:
                conn.run("getglobal", dict(GETGLOBAL_OBJ), timeout=60)
            assert "getglobal: not run: %d of our threads are still blocked" % MAX_STUCK_THREADS in str(refused.value)
            goodbye = conn.detach(timeout=30)
            assert goodbye.confirmed and goodbye.busy.count("in __repr__") == MAX_STUCK_THREADS, goodbye
        finally:
            conn.close()
        os.kill(target.pid, signal.SIGUSR1)  # every blocked __repr__ returns; our stop then ends it
        assert wait_until(lambda: not agent_threads(target.pid), timeout=60), agent_threads(target.pid)
        assert target.proc.poll() is None
        assert cli(target.pid, "getglobal __main__ BLOCKED", "--timeout", "30", timeout=60).returncode == 0
        assert cli(target.pid, "detach").returncode == 0
    finally:
        target.stop()


@pytest.mark.parametrize(("name", "python"), PICK, ids=[i for i, _ in PICK])
def test_the_client_that_injected_killed_while_it_holds_its_session(name: str, python: str) -> None:
    """The client that injected holds its session and is SIGKILLed: the session sees it gone and
    its thread ends; the listener serves the next client, and the detach leaves no thread of ours."""
    target = start_target(python, "service_target.py", "event")
    holder = None
    try:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from flight_profiler.attach.attacher import AttachOptions, connect\n"
                "c = connect(int(sys.argv[1]), AttachOptions(timeout=60)); print('connected', flush=True); time.sleep(60)\n",
                str(target.pid),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=client_env(),
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "connected"
        assert wait_until(lambda: "flight_profiler-session" in agent_threads(target.pid)), agent_threads(target.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # its read has no timeout: only the end of its socket ends it, so the thread's end proves the kill was seen
        assert wait_until(lambda: agent_threads(target.pid) == ["flight_profiler-agent"], timeout=60), agent_threads(
            target.pid
        )
        result = cli(target.pid, "module /y", "--timeout", "30", timeout=60)
        assert result.returncode == 0, result.stderr
        assert cli(target.pid, "detach").returncode == 0
        assert wait_until(lambda: not agent_threads(target.pid), timeout=60), agent_threads(target.pid)
        assert not os.path.exists(agent_socket(target.pid))
        assert target.healthy("event")
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        target.stop()


def test_the_listener_binds_over_a_stale_socket(tmp_path: object) -> None:
    """A socket file left by a dead agent is replaced, and a real bind error is not swallowed."""
    from flight_profiler.agent.server import _listen

    directory = os.path.join(str(tmp_path), "private")
    os.mkdir(directory, 0o700)
    path = os.path.join(directory, "agent-1.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    listener = _listen(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)  # refused if the stale file were still there
    finally:
        listener.close()
    os.unlink(path)
    # too long for a socket: the bind's error, not swallowed, said with the path (the client shows the agent's
    # last log line when it could not start)
    with pytest.raises(RuntimeError, match=r"cannot listen on .*aaaa\.sock: AF_UNIX path too long"):
        _listen(os.path.join(directory, "a" * 120 + ".sock"))


APP_DEFAULT = 0.005  # CPython's switch interval, which switch_target.py leaves as it is
APP_OWN = 0.0123  # what switch_target.py's "override" mode sets when it sees ours


class _Lines:
    """switch_target.py's stdout, read on a thread of ours: the test waits for a line with a bound."""

    def __init__(self, target: RunningTarget) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(target,), daemon=True).start()

    def _read(self, target: RunningTarget) -> None:
        assert target.proc.stdout is not None
        for line in target.proc.stdout:
            self._queue.put(line.strip())

    def first(self, prefix: str, timeout: float = 60.0) -> str | None:
        """The first line starting with ``prefix`` (now or earlier), None if none came within ``timeout`` s."""
        found = [line for line in self.seen if line.startswith(prefix)]
        while not found:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            self.seen.append(line)
            found = [line] if line.startswith(prefix) else []
        return found[0]

    def until(self, wanted: str) -> bool:
        return self.first(wanted) == wanted


def _end(target: RunningTarget, lines: _Lines) -> str:
    """The app's switch interval once our agent threads are gone, as its main thread reports it on SIGUSR1."""
    assert wait_until(lambda: not agent_threads(target.pid), timeout=60), "agent threads left after the detach"
    woke = None
    for _ in range(6):  # again if it went to another thread: the main thread's wait is not woken then (seen on 3.8)
        os.kill(target.pid, signal.SIGUSR1)
        woke = lines.first("woke ", timeout=10)
        if woke is not None:
            break
    assert woke is not None, "the target's main thread did not answer SIGUSR1: %s" % lines.seen
    return woke.split()[1]


@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_switch_interval_is_the_apps_again_after_the_first_answer(name: str, python: str) -> None:
    target = start_target(python, "switch_target.py", "keep", "4")
    lines = _Lines(target)
    try:
        result = cli(target.pid, "module /x", "--timeout", "60")
        assert result.returncode == 0, result.stderr
        assert lines.until("interval %r" % SWITCH_BOOST), "the agent's start did not shorten it: %s" % lines.seen
        assert lines.until("interval %r" % APP_DEFAULT), "not restored after the first answer: %s" % lines.seen
        assert cli(target.pid, "detach").returncode == 0
        assert _end(target, lines) == repr(APP_DEFAULT)
    finally:
        target.stop()


@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_an_interval_the_app_set_meanwhile_is_kept(name: str, python: str) -> None:
    """The app changes it while ours is in force: compare-and-restore leaves the app's value."""
    target = start_target(python, "switch_target.py", "override", "4")
    lines = _Lines(target)
    try:
        assert cli(target.pid, "module /x", "--timeout", "60").returncode == 0
        assert lines.until("set %r" % APP_OWN), "the app never saw the agent's interval: %s" % lines.seen
        assert cli(target.pid, "detach").returncode == 0
        assert _end(target, lines) == repr(APP_OWN), lines.seen
        assert "interval %r" % APP_DEFAULT not in lines.seen
    finally:
        target.stop()


@pytest.mark.parametrize(("name", "python"), INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def test_client_sigkilled_while_ours_is_in_force_the_target_restores_it(name: str, python: str) -> None:
    """Killed as soon as the bootstrap has shortened it: nothing of the client is needed to undo it."""
    target = start_target(python, "switch_target.py", "keep", "4")
    lines = _Lines(target)
    client = subprocess.Popen(
        [*cli_attach_argv(target.pid, "module /x"), "--timeout", "60"],
        env=client_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert lines.until("interval %r" % SWITCH_BOOST), "the agent's start did not shorten it: %s" % lines.seen
        client.kill()
        client.wait()
        assert lines.until("interval %r" % APP_DEFAULT), "never restored after the client died: %s" % lines.seen
        again = cli(target.pid, "module /y", "--timeout", "60")  # the target is fine: attach, detach
        assert again.returncode == 0, again.stderr
        assert cli(target.pid, "detach").returncode == 0
        assert _end(target, lines) == repr(APP_DEFAULT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        target.stop()


def test_a_target_of_many_threads_keeps_its_interval() -> None:
    """Beyond SWITCH_BOOST_MAX_THREADS threads the waiting threads' wake-ups would cost more than
    the shorter waits gain: the agent's start leaves the interval alone (the watcher, which prints
    every change it sees, prints none)."""
    target = start_target(NEWEST, "switch_target.py", "keep", "2", str(SWITCH_BOOST_MAX_THREADS))
    lines = _Lines(target)
    try:
        assert cli(target.pid, "module /x", "--timeout", "60").returncode == 0
        assert cli(target.pid, "detach").returncode == 0
        assert _end(target, lines) == repr(APP_DEFAULT)
        assert not [line for line in lines.seen if line.startswith("interval")], lines.seen
    finally:
        target.stop()
