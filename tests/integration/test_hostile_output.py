"""Nothing the target says reaches the terminal raw, and no answer can hang, flood or crash the CLI.

Two kinds of hostile target: a process that is its own fake agent (it passes the peer
check because it *is* the target, then sends escapes, floods, drips, deep and malformed
JSON), and real targets on every interpreter whose names, reprs, exception texts, thread
and file names carry ESC/OSC/BiDi bytes, attached to for real.
Text runs use --no-color, so any ESC on stdout or stderr came from the target.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flight_profiler.attach import paths
from flight_profiler.attach.target import inspect
from interpreters import find_interpreters
from support import TARGETS, CliResult, RunningTarget, cli, start_target

INTERPRETERS = find_interpreters()
SRC = os.path.dirname(os.path.dirname(os.path.abspath(str(__import__("flight_profiler").__file__))))
MAX_CLIENT_RSS_MB = 200  # the client's whole peak, interpreter and rich included, against a 80 MB message


def text_cli(pid: int, command: str, *options: str, timeout: float = 60.0) -> CliResult:
    return cli(pid, command, "--no-color", *options, json_output=False, timeout=timeout)


def assert_clean(result: CliResult) -> None:
    """No ESC nor C1 CSI, no BiDi control on either stream: only escaped forms."""
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x9b" not in stream and "\x07" not in stream, stream
        assert "\u202e" not in stream and "\u2066" not in stream, stream
    assert "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------ a fake agent


class FakeAgent:
    def __init__(self, mode: str) -> None:
        env = {**os.environ, "PYTHONPATH": SRC}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TARGETS, "fake_agent.py"), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().startswith("ready"), "the fake agent did not start"
        target = inspect(self.proc.pid)
        self.path = paths.from_client(target, paths.socket_in_target(target))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeAgent]:
    agent = FakeAgent(request.param)
    yield agent
    agent.stop()


ESCAPES_COMMANDS = [
    ("getglobal __main__ g", "\\x1b]52;c;aWQK"),
    ("vmtool -a getInstances -c __main__ C", "\\x1b]0;pwned"),
    ("module /x.py", "\\x1b[2J"),
    ("console -c 1", "\\x1b]8;;http://evil.example"),
    ("mem summary", "[red]x[/red]"),  # markup shown, not interpreted
    ("stack -a", "\\u202e"),
]


@pytest.mark.parametrize("fake", ["escapes"], indirect=True)
@pytest.mark.parametrize(("command", "shown"), ESCAPES_COMMANDS, ids=[c.split()[0] for c, _ in ESCAPES_COMMANDS])
def test_escapes_from_the_agent_are_shown_escaped(fake: FakeAgent, command: str, shown: str) -> None:
    status = 1 if command.startswith("console") else 0  # the fake console's answer carries an error
    result = text_cli(fake.pid, command)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert_clean(result)
    assert shown in result.stdout, result.stdout  # the data got through, escaped
    as_json = cli(fake.pid, command)
    assert as_json.returncode == status, as_json.stderr
    for line in as_json.stdout.splitlines():
        assert line.isprintable(), line  # json.dumps escapes every control character
    assert _holds_raw_esc(as_json.results)  # and the data is intact in JSON


def _holds_raw_esc(value: Any) -> bool:
    if isinstance(value, str):
        return "\x1b" in value
    if isinstance(value, dict):
        return any(_holds_raw_esc(key) or _holds_raw_esc(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_raw_esc(item) for item in value)
    return False


@pytest.mark.parametrize("fake", ["escapes"], indirect=True)
def test_a_hostile_error_is_one_escaped_line(fake: FakeAgent) -> None:
    result = text_cli(fake.pid, "watch __main__ f")
    assert result.returncode != 0
    assert_clean(result)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: failed \\x1b]0;pwned") and "\\nforged line" in line


BROKEN = [
    ("flood", "too large"),
    ("big", "too large"),
    ("deep", "nested too deeply"),
    ("malformed", "invalid JSON"),
    ("fields", "malformed getglobal result"),
]


@pytest.mark.parametrize(("fake", "reason"), BROKEN, indirect=["fake"], ids=[mode for mode, _ in BROKEN])
def test_broken_answers_are_one_line_errors_in_bounded_memory(fake: FakeAgent, reason: str) -> None:
    # --json prints what came, verbatim (an event without the renderer's fields is still JSON)
    for json_output in (False,) if reason.startswith("malformed") else (False, True):
        argv = [sys.executable, "-m", "flight_profiler", str(fake.pid), "--cmd", "getglobal __main__ g", "--no-color"]
        result, peak_mb = _run_measured(argv + (["--json"] if json_output else []))
        assert result.returncode != 0, result
        assert_clean(result)
        lines = (result.stdout if json_output else result.stderr).splitlines()
        assert len(lines) == 1 and reason in lines[0], (result.stdout, result.stderr)
        assert peak_mb < MAX_CLIENT_RSS_MB, peak_mb


def _run_measured(argv: list[str]) -> tuple[CliResult, float]:
    """Run the CLI and read its peak RSS from the kernel (wait4's rusage of that child alone).

    Through a small launcher: Linux counts in a child's peak the memory of the process it was
    forked from, and this pytest worker may have grown large (frida, loaded by the gilstat tests).
    """
    with open(os.devnull, "rb") as devnull:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        report_r, report_w = os.pipe()
        launcher = [sys.executable, "-c", _LAUNCH, str(report_w), *argv]
        proc = subprocess.Popen(launcher, stdin=devnull, stdout=out_w, stderr=err_w, pass_fds=(report_w,))
        for fd in (out_w, err_w, report_w):
            os.close(fd)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err, os.fdopen(report_r, "rb") as report:
            stdout = out.read()  # the CLI writes little: no deadlock between the pipes
            stderr = err.read()
            maxrss_kb, code = (int(word) for word in report.read().split())
        proc.wait()
    return CliResult(code, stdout.decode(), stderr.decode()), maxrss_kb / 1024.0


_LAUNCH = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "os.write(int(sys.argv[1]), b'%d %d' % (usage.ru_maxrss, os.waitstatus_to_exitcode(status)))\n"
)


@pytest.mark.parametrize("fake", ["drip_hello"], indirect=True)
def test_a_dripped_handshake_ends_at_the_handshake_bound(fake: FakeAgent) -> None:
    """~100 bytes at 5 a second would take 20 s; the handshake bound (--timeout) holds for the whole answer."""
    result = text_cli(fake.pid, "getglobal __main__ g", "--timeout", "2", timeout=15)  # TimeoutExpired: stretched
    assert result.returncode != 0 and "handshake" in result.stderr, result
    assert_clean(result)


@pytest.mark.parametrize("fake", ["drip_event"], indirect=True)
def test_one_ctrl_c_ends_a_dripped_answer(fake: FakeAgent) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flight_profiler", str(fake.pid), "--cmd", "getglobal __main__ g", "--no-color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert fake.proc.stdout is not None
    assert fake.proc.stdout.readline().strip() == "running"
    time.sleep(0.5)  # the CLI is inside its read
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=20)  # the drip alone would go on for ~30 s
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("one Ctrl-C did not end the read")
    assert "Traceback" not in stderr, stderr
    assert "\x1b" not in stdout + stderr


def test_a_peer_other_than_the_target_is_refused(tmp_path: Any) -> None:
    """A listener planted at the target's agent name (here: this test process) gets refused, and nothing sent."""
    target = start_target(sys.executable, "hostile_names_target.py")
    path = ""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        info = inspect(target.pid)
        path = paths.from_client(info, paths.socket_in_target(info))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        listener.bind(path)
        listener.listen(1)
        result = text_cli(target.pid, "getglobal __main__ TEXT", timeout=30)
        assert result.returncode != 0
        assert_clean(result)
        [line] = result.stderr.splitlines()
        assert "answered by pid %d" % os.getpid() in line and "not by the target pid %d" % target.pid in line
        listener.settimeout(5)
        conn, _ = listener.accept()
        conn.settimeout(5)
        assert conn.recv(1) == b""  # it sent nothing before checking who we were
        conn.close()
    finally:
        listener.close()
        if path:
            os.unlink(path)
        target.stop()


def test_a_link_at_the_socket_name_is_refused(tmp_path: Any) -> None:
    target = start_target(sys.executable, "hostile_names_target.py")
    other = FakeAgent("escapes")  # the agent the link leads to: someone else's
    path = ""
    try:
        info = inspect(target.pid)
        path = paths.from_client(info, paths.socket_in_target(info))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.symlink(other.path, path)
        result = text_cli(target.pid, "getglobal __main__ TEXT", timeout=30)
        assert result.returncode != 0
        assert "link" in result.stderr, result.stderr  # refused by the helper before any connect
    finally:
        if path and os.path.islink(path):
            os.unlink(path)
        other.stop()
        target.stop()


# ------------------------------------------------------------------ real hostile targets


@pytest.fixture(scope="module", params=INTERPRETERS, ids=[i for i, _ in INTERPRETERS])
def hostile(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    running = start_target(request.param[1], "hostile_names_target.py", "argv\x1b]0;title\x07\u202e")
    yield running
    cli(running.pid, "detach")
    running.stop()


REAL_COMMANDS = [
    ("getglobal __main__ HOSTILE -x 2", "\\x1b]8;;http://evil.example"),
    ("getglobal __main__ TEXT", "\\x1b]52;c;aWQK"),
    ("vmtool -a getInstances -c __main__ Hostile -n 2", "attr\\x1b[2J"),
    ("vmtool -a getInstances -c __main__ Hostile -n 2 -r", "<Hostile \\x1b]0;pwned\\x07\\u202eevil"),
    ("stack", "thread\\x1b]0;pwned\\x07\\u202eevil\\u2066"),
    ("stack", "evil\\x1b]0;pwned\\x07.py"),
    ("watch __main__ boom -e -n 1", "\\x1b]0;pwned"),
    ("mem summary --limit 50", "[red]x[/red]"),
    ("console -c \"print('\\x1b]52;c;aWQK\\x07'); '\\u202e'\"", "\\x1b]52;c;aWQK"),
]


@pytest.mark.parametrize(
    ("command", "shown"), REAL_COMMANDS, ids=[c.split()[0] + str(i) for i, (c, _) in enumerate(REAL_COMMANDS)]
)
def test_real_target_text_is_escaped(hostile: RunningTarget, command: str, shown: str) -> None:
    result = text_cli(hostile.pid, command)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert_clean(result)
    assert shown in result.stdout, result.stdout
    as_json = cli(hostile.pid, command)
    assert as_json.returncode == 0, as_json.stderr
    assert all(line.isprintable() for line in as_json.stdout.splitlines())
    assert as_json.results


def test_ps_escapes_other_processes_argv(hostile: RunningTarget) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "ps", str(hostile.pid), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert_clean(CliResult(result.returncode, result.stdout, result.stderr))
    assert "argv\\x1b]0;title\\x07\\u202e" in result.stdout, result.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "flight_profiler", "ps", str(hostile.pid), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    [record] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert "argv\x1b]0;title\x07\u202e" in record["result"]["processes"][0]["cmdline"]


# ------------------------------------------------------------------ files the CLI writes


def _cli_umask0(pid: int, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.umask(0),  # the files must be 0600 whatever the umask says
    )


@pytest.mark.parametrize("command", ["stack -f %s", "perf -d 1 -r 50 -f %s --format raw"])
def test_output_files_are_private_and_links_refused(hostile: RunningTarget, tmp_path: Any, command: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    victim = tmp_path / "victim"
    victim.write_text("keep")
    planted = shared / "out.txt"
    planted.symlink_to(victim)
    refused = _cli_umask0(hostile.pid, command % planted)
    assert refused.returncode != 0 and "symbolic link" in refused.stderr, refused.stderr
    assert victim.read_text() == "keep" and planted.is_symlink()

    fresh = shared / "fresh.txt"
    written = _cli_umask0(hostile.pid, command % fresh)
    assert written.returncode == 0, written.stderr
    assert (fresh.stat().st_mode & 0o777) == 0o600
    assert "\x1b" not in fresh.read_text(errors="replace")  # target names are escaped in the file too
    assert sorted(p.name for p in shared.iterdir()) == ["fresh.txt", "out.txt"]  # no staging left behind


def test_agent_refuses_a_client_whose_claimed_pid_is_not_its_socket(hostile: RunningTarget) -> None:
    """In one pid namespace, the hello's pid must be the connecting process (SO_PEERCRED)."""
    assert cli(hostile.pid, "getglobal __main__ TEXT").returncode == 0  # the agent runs
    info = inspect(hostile.pid)
    path = paths.from_client(info, paths.socket_in_target(info))
    pidns = os.readlink("/proc/self/ns/pid")
    for claimed, accepted in ((os.getpid() + 1, False), (os.getpid(), True)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(json.dumps({"type": "hello", "protocol": 1, "pid": claimed, "pidns": pidns}).encode() + b"\n")
            reply = json.loads(sock.makefile("rb").readline())
        assert (reply["type"] == "hello") is accepted, reply
