"""The pre-armed agent (``python -m flight_profiler.arm``): reachable where ptrace is forbidden (issue 13).

Real applications started armed, real CLI clients. The proofs that no ptrace is
used: the injector's phase log (FLIGHT_PROFILER_TEST_PHASE_LOG, written on every
phase of any injection) stays absent; and an application that made itself
non-dumpable, run as an unprivileged user and attached by that same user (the
kernel refuses that user ptrace and even /proc/<pid>/maps), answers commands
when armed, while its unarmed twin is refused with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Dict, Iterator, List, Optional

import pytest

from flight_profiler.attach import paths
from flight_profiler.attach.target import inspect
from interpreters import find_interpreters
from support import TARGETS, MadeUser, as_user, made_user, wait_until

ARM_VERSIONS = ("3.8", "3.12", "3.15")
INTERPRETERS = [(i, p) for i, p in find_interpreters() if i in ARM_VERSIONS]
IDS = [i for i, _ in INTERPRETERS]
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
APP = os.path.join(TARGETS, "armed_app.py")
ARM = ("-m", "flight_profiler.arm")
# commands the agent answers (stack and thread without -a/-b read from outside through py-spy)
READ_ONLY = ("thread -b", "stack -a", "source __main__ report", "module %s" % APP, "getglobal __main__ BEAT")

pytestmark = pytest.mark.skipif(not INTERPRETERS, reason="none of %s found" % (ARM_VERSIONS,))


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHT_PROFILER_")}
    env["PYTHONPATH"] = SRC  # flight_profiler installed for the application, as in its image
    env.update(extra)
    return env


def _run(argv: List[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_env(**extra), cwd=TARGETS, check=False)


class App:
    """An application process that prints "ready PID" and runs until stopped."""

    def __init__(self, argv: List[str], env: Dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            pytest.fail("application did not start: %r %s" % (line, self.proc.stderr and self.proc.stderr.read()))
        self.pid = int(line.split()[1])

    def socket(self) -> str:
        return paths.agent_socket(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def cli(pid: int, command: str, prefix: Optional[List[str]] = None, **extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), sys.executable, "-m", "flight_profiler", str(pid), "--cmd", command, "--json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_env(**extra), cwd="/", check=False)


def _value(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    return json.loads(result.stdout.splitlines()[-1])["result"]["value"]["v"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_the_armed_application_is_itself(interp: str, python: str) -> None:
    """argv, sys.path[0], __main__, __file__, hooks, signals, exit codes and tracebacks as without arming."""
    plain = _run([python, APP, "report", "x", "--y"])
    armed = _run([python, *ARM, APP, "report", "x", "--y"])
    assert (armed.returncode, plain.returncode) == (7, 7), armed.stderr + plain.stderr
    seen, expected = json.loads(armed.stdout), json.loads(plain.stdout)
    assert seen.pop("threads") == ["flight_profiler-agent"]  # the one thing arming adds: the listener's thread
    expected.pop("threads")
    assert seen == expected and seen["ours"] == [] and seen["main_is_us"], (seen, expected)
    plain_boom = _run([python, APP, "boom"])
    armed_boom = _run([python, *ARM, APP, "boom"])
    assert armed_boom.returncode == plain_boom.returncode == 1
    assert armed_boom.stderr == plain_boom.stderr and "ValueError: boom" in armed_boom.stderr  # no frame of ours
    usage = _run([python, *ARM])
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
@pytest.mark.parametrize("how", ["module", "environment"])
def test_armed_agent_answers_without_any_injection(interp: str, python: str, how: str, tmp_path: str) -> None:
    if how == "module":
        app = App([python, *ARM, APP, "wait"], _env())
    else:
        app = App([python, APP, "import"], _env(FLIGHT_PROFILER_ARM="1"))
    phases = os.path.join(str(tmp_path), "phases")
    try:
        assert wait_until(lambda: os.path.exists(app.socket()), timeout=30)
        for _ in range(2):  # detach re-arms: the second round finds a listener again
            mode = _value(cli(app.pid, "getglobal __main__ MODE", FLIGHT_PROFILER_TEST_PHASE_LOG=phases))
            assert mode == ("wait" if how == "module" else "import")
            for command in READ_ONLY:
                answer = cli(app.pid, command, FLIGHT_PROFILER_TEST_PHASE_LOG=phases)
                assert answer.returncode == 0, (command, answer.stdout[-1000:], answer.stderr[-1000:])
            assert cli(app.pid, "detach", FLIGHT_PROFILER_TEST_PHASE_LOG=phases).returncode == 0
            assert wait_until(lambda: os.path.exists(app.socket()), timeout=30), "not armed again after detach"
        assert not os.path.exists(phases), "the injector ran"
        assert app.proc.poll() is None
        directory = os.path.dirname(app.socket())
        stem = paths.stem(inspect(app.pid))
        assert sorted(n for n in os.listdir(directory) if n.startswith(stem + ".")) == [stem + ".sock"]
    finally:
        app.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_an_application_whose_tmp_is_read_only_arms_under_dev_shm(interp: str, python: str, tmp_path: str) -> None:
    """readOnlyRootFilesystem: the armed agent and the client both choose /dev/shm (attach/places)."""
    if os.path.realpath(SRC).startswith("/tmp/"):
        pytest.skip("the checkout is under /tmp, which this test hides under a read-only tmpfs")
    mounts = "mount -t tmpfs -o ro tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm"
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", mounts + ' && exec "$@"', "sh"]
    app = App([*wrap, python, *ARM, APP, "wait"], _env())
    phases = os.path.join(str(tmp_path), "phases")
    try:
        shm = "/proc/%d/root/dev/shm/flight_profiler-%d" % (app.pid, os.getuid())
        assert wait_until(lambda: os.path.exists(app.socket()), timeout=30)
        assert os.path.dirname(app.socket()) == shm
        assert _value(cli(app.pid, "getglobal __main__ MODE", FLIGHT_PROFILER_TEST_PHASE_LOG=phases)) == "wait"
        assert not os.path.exists(phases), "the injector ran: the client did not find the armed agent"
        assert app.proc.poll() is None
    finally:
        app.stop()


# ---------------------------------------------------------------------- ptrace forbidden by the kernel


@pytest.fixture(scope="module")
def user() -> Iterator[MadeUser]:
    with made_user("fph12a") as made:
        yield made


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("interp", "python"), INTERPRETERS, ids=IDS)
def test_armed_agent_answers_where_ptrace_is_forbidden(interp: str, python: str, user: MadeUser) -> None:
    """A non-dumpable application and a client of its own (unprivileged) user: no ptrace, no /proc maps."""
    armed = App([*as_user(user), python, *ARM, APP, "wait", "nodump"], _env())
    unarmed = App([*as_user(user), python, APP, "wait", "nodump"], _env())
    try:
        refused = cli(unarmed.pid, "getglobal __main__ MODE", prefix=as_user(user))
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "cannot read" in said and "no pre-armed agent" in said, said
        # read from outside: py-spy's own word was "Failed to get process executable name. Check that the
        # process is running." about a process that runs; the attach's reason is given instead
        outside = cli(unarmed.pid, "stack", prefix=as_user(user))
        error = json.loads(outside.stdout.splitlines()[-1])["error"] if outside.stdout else outside.stderr
        assert outside.returncode != 0 and error.startswith("cannot read /proc/%d/maps: " % unarmed.pid), error
        assert error in json.loads(refused.stdout.splitlines()[-1])["error"], (error, refused.stdout)  # the same reason
        assert wait_until(lambda: os.path.exists(armed.socket()), timeout=30)
        assert _value(cli(armed.pid, "getglobal __main__ MODE", prefix=as_user(user))) == "wait"
        for command in READ_ONLY:
            answer = cli(armed.pid, command, prefix=as_user(user))
            assert answer.returncode == 0, (command, answer.stdout[-1000:], answer.stderr[-1000:])
        # py-spy may not read it (needs ptrace rights): stack asks the armed agent instead, and says so
        stacks = cli(armed.pid, "stack", prefix=as_user(user))
        assert stacks.returncode == 0, stacks.stderr[-2000:]
        [result] = [json.loads(line)["result"] for line in stacks.stdout.splitlines()]
        assert result["from"] == "agent", result
        [main] = [thread for thread in result["threads"] if thread["name"] == "MainThread"]
        assert main["frames"][-1]["file"].endswith("armed_app.py"), main  # the app's own loop, innermost last
        assert not [t for t in result["threads"] if t["name"].startswith("flight_profiler")], result  # not ours
        # what only reading from outside gives (C frames) is refused in one line, the session goes on
        outside = cli(armed.pid, "stack --native", prefix=as_user(user))
        assert outside.returncode != 0 and "Traceback" not in outside.stdout + outside.stderr
        assert cli(armed.pid, "detach", prefix=as_user(user)).returncode == 0
        assert wait_until(lambda: os.path.exists(armed.socket()), timeout=30)
        assert _value(cli(armed.pid, "getglobal __main__ MODE", prefix=as_user(user))) == "wait"
        assert armed.proc.poll() is None and unarmed.proc.poll() is None
    finally:
        armed.stop()
        unarmed.stop()


def test_a_failure_is_never_logged_through_another_users_directory(tmp_path: str) -> None:
    """/tmp/flight_profiler-<uid> made by someone else, with a link where our log would go: nothing written."""
    from flight_profiler import arm

    if os.geteuid() != 0:
        pytest.skip("needs root to hand the directory to another user")
    directory = os.path.join(str(tmp_path), "flight_profiler-x")
    os.mkdir(directory, 0o755)
    victim = os.path.join(str(tmp_path), "victim")
    with open(victim, "w") as fh:
        fh.write("keep")
    path = os.path.join(directory, "agent-1-2-3.sock")
    os.symlink(victim, path + ".log")
    os.chown(directory, 65534, 65534)  # nobody's: not ours
    try:
        raise RuntimeError("the agent could not listen")
    except RuntimeError:
        arm._log(path)
    os.chown(directory, 0, 0)
    os.chmod(directory, 0o777)  # ours, but open to others: still refused
    try:
        raise RuntimeError("the agent could not listen")
    except RuntimeError:
        arm._log(path)
    with open(victim) as fh:
        assert fh.read() == "keep"
    os.chmod(directory, 0o700)  # ours and private: logged, but never through the link
    try:
        raise RuntimeError("the agent could not listen")
    except RuntimeError:
        arm._log(path)
    with open(victim) as fh:
        assert fh.read() == "keep"
    os.unlink(path + ".log")
    try:
        raise RuntimeError("the agent could not listen")
    except RuntimeError:
        arm._log(path)
    with open(path + ".log") as fh:
        assert "the agent could not listen" in fh.read()
    assert os.stat(path + ".log").st_mode & 0o777 == 0o600


@pytest.mark.timeout(120)
def test_a_free_threaded_build_without_the_gil_runs_unarmed() -> None:
    """As an attach refuses such a build, arming does: the application runs, and says once why it is not armed
    (no free-threaded CPython is packaged here: ``sys._is_gil_enabled`` answers as one without the GIL)."""
    python = dict(INTERPRETERS).get("3.15") or dict(INTERPRETERS).get("3.12") or sys.executable
    script = (
        "import sys; sys._is_gil_enabled = lambda: False; sys.argv = ['arm', %r, 'report', 'x']; "
        "import runpy; runpy.run_module('flight_profiler.arm', run_name='__main__')" % APP
    )
    result = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, timeout=60, env=_env(), cwd=TARGETS, check=False
    )
    assert result.returncode == 7, result.stderr  # the application's own exit status
    assert result.stderr.startswith("flight_profiler.arm: not armed: a free-threaded build running without the GIL")
    assert json.loads(result.stdout)["threads"] == [], result.stdout  # no listener started
