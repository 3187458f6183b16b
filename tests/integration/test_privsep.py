"""Root attaching to another user's process gives that user nothing.

Real unprivileged users (created here, removed after), real racers running as
those users while root's client works in their directory, real namespaces
(``unshare``), a real chroot. Targets run as the test user with one extra
capability, CAP_DAC_READ_SEARCH, only because the test interpreters live under
root's 0700 home; racers run without it (Debian's /usr/bin/python3.11).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from flight_profiler.attach import attacher, paths, privsep
from flight_profiler.attach.target import Target, inspect
from flight_profiler.discovery import processes
from flight_profiler.errors import AttachError
from interpreters import find_interpreters
from support import TARGETS, agent_threads, cli, user_name, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("useradd") or not shutil.which("unshare"),
    reason="needs root, setpriv, useradd and unshare",
)

PYTHONS = dict(find_interpreters())
RACER_PYTHON = "/usr/bin/python3.11"  # any user can run it (pyenv's interpreters live under /root)
ITERATIONS = 200
RACE_TRIES = 10  # rounds of ITERATIONS until the racer has been caught at least once
USER_PYTHON = PYTHONS.get("3.12") or PYTHONS.get("deb3.11") or next(iter(PYTHONS.values()), "")


class User(NamedTuple):
    name: str
    uid: int
    gid: int


class Proc:
    """A process we started (``pid`` may be a child of ``proc`` in a new pid namespace)."""

    def __init__(self, proc: subprocess.Popen[str], pid: int) -> None:
        self.proc = proc
        self.pid = pid

    def alive_and_running(self) -> bool:
        with open("/proc/%d/status" % self.pid) as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return fields["State"].split()[0] in ("S", "R") and fields["TracerPid"].strip() == "0"

    def stop(self) -> None:
        for pid in {self.pid, self.proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def _make_user(name: str) -> User:
    subprocess.run(["userdel", name], capture_output=True, check=False)  # a leftover of a killed run
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def _kill_processes_of(uid: int) -> None:
    """Every process of a user this module created is one of ours."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/" + entry).st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[User, User]]:
    made = (_make_user(user_name("fph2a")), _make_user(user_name("fph2b")))
    yield made
    for user in made:
        _kill_processes_of(user.uid)
        shutil.rmtree("/tmp/flight_profiler-%d" % user.uid, ignore_errors=True)
        subprocess.run(["userdel", user.name], capture_output=True, check=False)


def _as(user: User, caps: bool = True) -> list[str]:
    argv = ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--clear-groups"]
    if caps:
        argv += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return argv


def start_as(
    user: User, python: str, scenario: str = "event", wrap: tuple[str, ...] = (), caps: bool = True, child: bool = False
) -> Proc:
    """service_target.py as ``user``; ``wrap`` runs first (unshare, sh -c); ``child``: the target is its child."""
    argv = [*wrap, *_as(user, caps), python, os.path.join(TARGETS, "service_target.py"), scenario]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        proc.wait()
        pytest.fail("target %s did not start: %r" % (argv, line))
    pid = proc.pid
    if child:
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as fh:
            pid = int(fh.read().split()[0])
    return Proc(proc, pid)


_RACER = r"""
import os, signal, socket, sys
mode, directory, victim = sys.argv[1:4]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
swaps = 0
print("racing", flush=True)
while not stop:
    try:
        if mode == "bundle":  # every file we did not make becomes a link to root's secret
            for name in os.listdir(directory):
                if not name.endswith((".sock", ".lock")):
                    path = os.path.join(directory, name)
                    os.unlink(path)
                    os.symlink(victim, path)
                    swaps += 1
        elif mode == "dir":  # the private directory becomes a link to someone else's
            if os.path.islink(directory):
                os.unlink(directory)
            elif os.path.isdir(directory):
                # a name no earlier racer used: one left by a run that could not clean up would make every
                # rename fail (OSError, retried) and stop the race at that count (a cause that fits one
                # full run's 286 swaps and no refusal in 2,000 rounds)
                os.rename(directory, "%s.aside-%d-%d" % (directory, os.getpid(), swaps))
                os.symlink(victim, directory)
                swaps += 1
        elif mode == "socket":  # the agent's socket name: a link to another user's agent, or a dead socket
            name = sys.argv[4]
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                os.unlink(path)
            if swaps % 2:
                os.symlink(victim, path)
            else:
                dead = socket.socket(socket.AF_UNIX)
                dead.bind(path)
                dead.close()
            swaps += 1
    except OSError:
        pass
print(swaps, flush=True)
"""


class Racer:
    def __init__(self, user: User, *args: str) -> None:
        if not os.access(RACER_PYTHON, os.X_OK):
            pytest.skip("no interpreter that an unprivileged user can run")
        self.proc = subprocess.Popen(
            [*_as(user, caps=False), RACER_PYTHON, "-c", _RACER, *args], stdout=subprocess.PIPE, text=True, cwd="/"
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "racing"

    def stop(self) -> int:
        """The number of swaps it made (a racer that never raced proves nothing)."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return int(out.split()[-1])


def _private_dir(user: User) -> str:
    return "/tmp/flight_profiler-%d" % user.uid


def _file_work(pid: int, rounds: int, shared: bool = False) -> int:
    """What an attach does in the user's directory, ``rounds`` times, through the real helper; refusals counted.

    ``shared``: as a group's attaches do, each round a session on one helper process (privsep.sharing)."""
    target = inspect(pid)
    with privsep.sharing() if shared else contextlib.nullcontext():
        return _file_work_rounds(target, rounds)


def _file_work_rounds(target: Target, rounds: int) -> int:
    refused = 0
    for _ in range(rounds):
        try:
            with privsep.start(target, paths.private_dir(target)) as helper:
                helper.call("open_dir", create=True)
                attacher._remove_stale(helper, target)
                lock = helper.call("lock", name=paths.lock_name(target))[1][0]
                os.close(lock)
                helper.call("write", name=paths.stem(target) + ".bundle", text="{}")
                # a group's next target gets the same bundle by a hard link (attacher._write_bundle)
                helper.call("link", source=paths.stem(target) + ".bundle", name=paths.stem(target) + ".b2", size=2)
                name = helper.call("write_script", prefix=paths.stem(target), text="pass\n")[0]["name"]
                helper.call("remove", names=[name, paths.stem(target) + ".bundle", paths.stem(target) + ".b2"])
        except AttachError:
            refused += 1
    return refused


def _owned(path: str, uid: int, mode: int) -> bool:
    info = os.lstat(path)
    return info.st_uid == uid and stat.S_IMODE(info.st_mode) == mode


# ---------------------------------------------------------------------- plain attach as root


@pytest.mark.parametrize("version", ["3.12", "3.14"])
def test_root_attach_to_user_target_leaves_only_user_files(users: tuple[User, User], version: str) -> None:
    if version not in PYTHONS:
        pytest.skip("no Python %s here" % version)
    user = users[0]
    target = start_as(user, PYTHONS[version], "busy")
    try:
        result = cli(target.pid, "getglobal sys argv", "--debug")
        assert result.returncode == 0, result.stderr
        assert result.results[0]["value"]["items"][-1]["v"] == "busy"
        directory = _private_dir(user)
        assert _owned(directory, user.uid, 0o700)
        for name in os.listdir(directory):
            if name.startswith(paths.stem(inspect(target.pid))):
                assert _owned(os.path.join(directory, name), user.uid, 0o600), name
        assert cli(target.pid, "detach").returncode == 0
        assert wait_until(lambda: not agent_threads(target.pid), timeout=30)
        assert target.alive_and_running()
    finally:
        target.stop()


# ---------------------------------------------------------------------- racers


def test_bundle_swap_racer_never_reaches_root_files(users: tuple[User, User]) -> None:
    user = users[0]
    fd, secret = tempfile.mkstemp(prefix="fph2-secret-")
    os.write(fd, b"root's secret\n")
    os.close(fd)
    target = start_as(user, USER_PYTHON)
    try:
        _file_work(target.pid, 1)  # the directory exists before the racer watches it
        racer = Racer(user, "bundle", _private_dir(user), secret)
        try:
            _file_work(target.pid, ITERATIONS)
            _file_work(target.pid, ITERATIONS // 2, shared=True)  # sessions of a group's shared helper
            cli(target.pid, "module /x.py", "--timeout", "3")  # the whole attach, under the racer
        finally:
            swaps = racer.stop()
        assert swaps > 0
        assert _owned(secret, 0, 0o600)
        assert os.stat(secret).st_gid == 0
        with open(secret, "rb") as fh:
            assert fh.read() == b"root's secret\n"
        assert target.alive_and_running()
    finally:
        target.stop()
        os.unlink(secret)


def test_directory_swap_racer_never_touches_another_directory(users: tuple[User, User]) -> None:
    user = users[0]
    victim = tempfile.mkdtemp(prefix="fph2-victim-")
    os.chmod(victim, 0o755)
    planted = ["agent-1-1-1.bundle", "agent-1-1-1.sock.log", "agent-1-1-1.lock"]  # look stale: cleanup bait
    for name in planted:
        with open(os.path.join(victim, name), "w") as fh:
            fh.write("victim\n")
    target = start_as(user, USER_PYTHON)
    try:
        _file_work(target.pid, 1)
        racer = Racer(user, "dir", _private_dir(user), victim)
        try:
            refused = 0
            for _ in range(RACE_TRIES):  # on a loaded host the racer's swaps may miss a round of 200
                refused += _file_work(target.pid, ITERATIONS)
                if refused:
                    break
            cli(target.pid, "module /x.py", "--timeout", "3")
        finally:
            swaps = racer.stop()
        assert swaps > 0 and refused > 0, (swaps, refused)  # the race was on, and the helper saw links and refused them
        assert sorted(os.listdir(victim)) == sorted(planted)
        for name in planted:
            assert _owned(os.path.join(victim, name), 0, 0o644)
        assert target.alive_and_running()
    finally:
        target.stop()
        shutil.rmtree(victim)
        for name in os.listdir("/tmp"):
            if name.startswith("flight_profiler-%d.aside-" % user.uid):
                shutil.rmtree(os.path.join("/tmp", name), ignore_errors=True)
        if os.path.islink(_private_dir(user)):
            os.unlink(_private_dir(user))


def test_socket_link_racer_never_reaches_another_users_agent(users: tuple[User, User]) -> None:
    user, other = users
    mine = start_as(user, USER_PYTHON, "event")
    theirs = start_as(other, USER_PYTHON, "sleeploop")
    try:
        assert cli(theirs.pid, "module /x.py").returncode == 0
        their_socket = paths.agent_socket(theirs.pid)
        name = paths.socket_name(inspect(mine.pid))
        _file_work(mine.pid, 1)
        racer = Racer(user, "socket", _private_dir(user), their_socket, name)
        connected = 0
        try:
            for _ in range(ITERATIONS):
                try:
                    conn = attacher.existing_agent(mine.pid)
                except AttachError:
                    continue
                if conn is not None:
                    connected += 1
                    conn.close()
        finally:
            swaps = racer.stop()
        assert swaps > 0
        assert connected == 0
        placed = os.path.join(_private_dir(user), name)
        if os.path.lexists(placed):
            os.unlink(placed)
        os.symlink(their_socket, placed)  # pre-placed, as in the report
        refused = cli(mine.pid, "getglobal sys argv")
        assert refused.returncode != 0 and "not a socket" in refused.errors[0], refused.stdout
        os.unlink(placed)
        ours = cli(mine.pid, "getglobal sys argv")
        assert ours.returncode == 0 and ours.results[0]["value"]["items"][-1]["v"] == "event"
        assert cli(theirs.pid, "getglobal sys argv").results[0]["value"]["items"][-1]["v"] == "sleeploop"
        for proc in (mine, theirs):
            assert cli(proc.pid, "detach").returncode == 0
            assert proc.alive_and_running()
    finally:
        mine.stop()
        theirs.stop()


# ---------------------------------------------------------------------- the target's own interpreter (3.14)


def test_user_owned_314_with_pth_never_runs_as_root(users: tuple[User, User]) -> None:
    original = PYTHONS.get("3.14", "")
    if not original or not shutil.which("patchelf"):
        pytest.skip("needs Python 3.14 and patchelf")
    user = users[0]
    prefix = os.path.dirname(os.path.dirname(original))  # .../usr
    copy = tempfile.mkdtemp(prefix="fph2-py314-")
    markers = tempfile.mkdtemp(prefix="fph2-markers-")
    os.chmod(markers, 0o1777)
    try:
        shutil.copytree(prefix, os.path.join(copy, "usr"), symlinks=True)
        for root, dirs, files in os.walk(copy):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, user.uid, user.gid)
        python = os.path.join(copy, "usr", "bin", os.path.basename(original))
        libs = os.path.join(copy, "usr", "lib", "x86_64-linux-gnu")  # the copy's own loader and libc, as a user's
        relink = ["patchelf", "--set-interpreter", os.path.join(libs, "ld-linux-x86-64.so.2"), "--force-rpath"]
        subprocess.run([*relink, "--set-rpath", libs, python], check=True, capture_output=True)
        site = subprocess.run(
            [*_as(user, caps=False), python, "-c", "import site; print(site.getsitepackages()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert site.startswith(copy)
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "zz_marker.pth"), "w") as fh:
            fh.write(
                "import os; open(os.path.join(%r, '%%d-%%d' %% (os.getuid(), os.getpid())), 'w').close()\n" % markers
            )
        # every start of that interpreter, isolated or not (-I -S: the client's compile of our start set), runs
        # its encodings package: the user's code too
        encodings = os.path.join(copy, "usr", "lib", "python3.14", "encodings", "__init__.py")
        with open(encodings, "a") as fh:  # (no open() yet when encodings is first imported: os.open)
            fh.write(
                "\nimport os as _os\n_os.close(_os.open(_os.path.join(%r, 'enc-%%d-%%d' %% (_os.getuid(), _os.getpid())),"
                " _os.O_CREAT | _os.O_WRONLY, 0o644))\n" % markers
            )
        target = start_as(user, python, "busy", caps=False)
        try:
            result = cli(target.pid, "getglobal sys argv", "--debug")
            assert result.returncode == 0, result.stderr
            ran_as = {name.split("-")[-2] for name in os.listdir(markers)}
            assert ran_as == {str(user.uid)}  # the user's .pth and encodings never ran as root
            helpers = [n for n in os.listdir(markers) if not n.endswith("-%d" % target.pid)]
            assert any(not n.startswith("enc-") for n in helpers)  # remote_exec ran, as the user
            assert len([n for n in helpers if n.startswith("enc-")]) >= 2  # so did the compile (-S: no .pth)
            assert "the target compiles our start set" not in result.stderr
            assert cli(target.pid, "detach").returncode == 0
            assert target.alive_and_running()
            _group_compiles_through_the_shared_helper(user, python, target, markers)
        finally:
            target.stop()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(markers, ignore_errors=True)


def _group_compiles_through_the_shared_helper(user: User, python: str, first: Proc, markers: str) -> None:
    """Two of the user's targets at once (one helper process shared by the group's attaches), with no
    bytecode kept from before: the user's interpreter compiles our start set once, as the user."""
    second = start_as(user, python, "busy", caps=False)
    cache = tempfile.mkdtemp(prefix="fp-empty-cache-")
    try:
        before = set(os.listdir(markers))
        pids = "%d,%d" % (first.pid, second.pid)
        argv = [sys.executable, "-m", "flight_profiler", "-p", pids, "--cmd", "getglobal sys argv", "--debug"]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=90, check=False, env=dict(os.environ, XDG_CACHE_HOME=cache)
        )
        assert proc.returncode == 0, proc.stderr
        assert "the target compiles our start set" not in proc.stderr
        new = [n for n in set(os.listdir(markers)) - before if n.startswith("enc-")]
        assert {n.split("-")[1] for n in new} == {str(user.uid)}, new  # the compile, and remote_exec, as the user
        assert len(os.listdir(os.path.join(cache, "flight_profiler", "bytecode"))) == 1  # compiled once, kept
        for proc_ in (first, second):
            assert cli(proc_.pid, "detach").returncode == 0
            assert proc_.alive_and_running()
    finally:
        second.stop()
        shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------- namespaces


def test_two_pid_namespaces_sharing_tmp(users: tuple[User, User]) -> None:
    """Both are pid 1 in their namespace: two names, no cross talk, cleanup removes neither."""
    user = users[0]
    wrap = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")
    first = start_as(user, USER_PYTHON, "event", wrap=wrap, child=True)
    second = start_as(user, USER_PYTHON, "sleeploop", wrap=wrap, child=True)
    third = start_as(user, USER_PYTHON, "event")
    try:
        assert inspect(first.pid).ns_pid == inspect(second.pid).ns_pid == 1
        for proc, scenario in ((first, "event"), (second, "sleeploop"), (first, "event")):
            result = cli(proc.pid, "getglobal sys argv")
            assert result.returncode == 0, result.stdout
            assert result.results[0]["value"]["items"][-1]["v"] == scenario
        for proc in (first, second):  # the socket the helper hands over is the target's agent, by host pid
            conn = attacher.existing_agent(proc.pid)
            assert conn is not None
            creds = conn.channel.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            conn.close()
            assert int.from_bytes(creds[:4], sys.byteorder) == proc.pid
        sockets = [os.path.join(_private_dir(user), paths.socket_name(inspect(p.pid))) for p in (first, second)]
        assert sockets[0] != sockets[1]
        dead = "agent-%d-999999-1" % inspect(third.pid).pid_ns  # a process that is certainly gone
        with privsep.start(inspect(third.pid), _private_dir(user)) as helper:
            helper.call("open_dir", create=True)
            helper.call("write", name=dead + ".bundle", text="{}")
        assert cli(third.pid, "module /x.py").returncode == 0  # a fresh attach runs the stale cleanup
        assert not os.path.exists(os.path.join(_private_dir(user), dead + ".bundle"))
        assert all(stat.S_ISSOCK(os.lstat(s).st_mode) for s in sockets)
        for proc, scenario in ((second, "sleeploop"), (first, "event")):
            assert cli(proc.pid, "getglobal sys argv").results[0]["value"]["items"][-1]["v"] == scenario
        for proc in (first, second, third):
            assert cli(proc.pid, "detach").returncode == 0
            assert proc.alive_and_running()
    finally:
        for proc in (first, second, third):
            proc.stop()


def _private_tmp(options: str, shm: str = "") -> tuple[str, ...]:
    """A tmpfs mounted with ``options`` on the target's /tmp (and with ``shm`` on its /dev/shm), in a mount
    namespace of its own: nothing of the test's lands on the host's."""
    checkout = os.path.realpath(os.path.dirname(__file__))
    if checkout.startswith("/tmp/"):  # (a clone made there fails these tests, and only these)
        pytest.skip("the checkout is under /tmp, which this test hides under a tmpfs in the target's namespace")
    script = "mount -t tmpfs -o %s tmpfs /tmp" % options
    if shm:
        script += " && mount -t tmpfs -o %s tmpfs /dev/shm" % shm
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script + ' && exec "$@"', "sh")


def test_private_tmp_target_attaches_and_detaches(users: tuple[User, User]) -> None:
    user = users[0]
    target = start_as(user, USER_PYTHON, "event", wrap=_private_tmp("mode=1777"))
    try:
        name = paths.socket_name(inspect(target.pid))
        result = cli(target.pid, "getglobal sys argv")
        assert result.returncode == 0, result.stdout
        inside = "/proc/%d/root/tmp/flight_profiler-%d" % (target.pid, user.uid)
        assert stat.S_ISSOCK(os.lstat(os.path.join(inside, name)).st_mode)
        assert not os.path.exists(os.path.join(_private_dir(user), name))  # nothing on our /tmp
        assert cli(target.pid, "detach").returncode == 0
        assert os.listdir(inside) == [paths.lock_name(inspect(target.pid))]
        assert target.alive_and_running()
    finally:
        target.stop()


@pytest.mark.parametrize("tmp", ["ro", "mode=0755"])  # read-only; root's and not the target user's to write
def test_a_read_only_tmp_puts_the_agent_under_dev_shm(users: tuple[User, User], tmp: str) -> None:
    """readOnlyRootFilesystem, docker --read-only: /tmp read-only, /dev/shm still a writable tmpfs."""
    user = users[0]
    target = start_as(user, USER_PYTHON, "event", wrap=_private_tmp(tmp, shm="mode=1777"))
    try:
        name = paths.socket_name(inspect(target.pid))
        result = cli(target.pid, "getglobal sys argv")
        assert result.returncode == 0, result.stdout
        shm = "/proc/%d/root/dev/shm/flight_profiler-%d" % (target.pid, user.uid)
        assert stat.S_ISSOCK(os.lstat(os.path.join(shm, name)).st_mode)
        assert stat.S_IMODE(os.lstat(shm).st_mode) == 0o700
        assert os.listdir("/proc/%d/root/tmp" % target.pid) == []
        assert paths.agent_socket(target.pid) == os.path.join(shm, name)
        assert processes.agent_running(target.pid), "ps does not see the agent under /dev/shm"
        again = cli(target.pid, "getglobal sys argv", "--debug")  # the next client finds it there: no injection
        assert again.returncode == 0 and "reusing the agent" in again.stderr, again.stderr
        assert cli(target.pid, "detach").returncode == 0
        assert os.listdir(shm) == [paths.lock_name(inspect(target.pid))]
        assert agent_threads(target.pid) == []
        assert target.alive_and_running()
    finally:
        target.stop()


@pytest.mark.parametrize(
    ("options", "shm", "reason"),
    [
        ("ro", "ro", "Read-only file system (and /dev/shm is read-only, missing or not writable either)"),
        ("mode=0755", "ro", "Permission denied (and /dev/shm is read-only, missing or not writable either)"),
        ("size=64k,mode=1777", "", "No space left on device"),  # full, not read-only: no move (see places)
    ],
)
def test_read_only_or_full_tmp_says_why_at_once(users: tuple[User, User], options: str, shm: str, reason: str) -> None:
    user = users[0]
    target = start_as(user, USER_PYTHON, "event", wrap=_private_tmp(options, shm))
    try:
        result = cli(target.pid, "getglobal sys argv")
        assert result.returncode != 0
        assert len(result.errors) == 1 and reason in result.errors[0], result.stdout
        assert "Traceback" not in result.stderr
        assert agent_threads(target.pid) == []
        assert target.alive_and_running()
    finally:
        target.stop()


def test_chroot_whose_tmp_is_an_absolute_link(users: tuple[User, User]) -> None:
    """The target's /tmp -> /var/tmp means its own /var/tmp, never the host's."""
    if not os.access(RACER_PYTHON, os.X_OK):
        pytest.skip("needs %s" % RACER_PYTHON)
    user = users[0]
    host_dir = "/var/tmp/flight_profiler-%d" % user.uid
    assert not os.path.exists(host_dir)
    root = tempfile.mkdtemp(prefix="fph2-chroot-")
    os.chmod(root, 0o755)
    binds = []
    for name in ("usr", "lib", "lib64", "lib32", "bin", "sbin", "etc", "dev"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(root, name))
        elif os.path.isdir(host):
            os.mkdir(os.path.join(root, name))
            binds.append(name)
    os.makedirs(os.path.join(root, "proc"))
    os.makedirs(os.path.join(root, "targets"))
    os.makedirs(os.path.join(root, "var", "tmp"))
    os.chmod(os.path.join(root, "var", "tmp"), 0o1777)
    os.symlink("/var/tmp", os.path.join(root, "tmp"))
    mounts = " && ".join(["mount --rbind /%s %s/%s" % (b, root, b) for b in binds])
    script = '%s && mount --bind %s %s/targets && mount -t proc proc %s/proc && exec chroot %s "$@"' % (
        mounts,
        TARGETS,
        root,
        root,
        root,
    )
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *_as(user, caps=False)]
    proc = subprocess.Popen(
        [*argv, RACER_PYTHON, "/targets/service_target.py", "event"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd="/",
    )
    target = Proc(proc, proc.pid)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        # The file work of an attach, through the real helper, then a whole attach: the
        # injector opens the mapped files through /proc/<pid>/map_files (map paths are
        # relative to our root, not the chroot's).
        _file_work(target.pid, 1)
        with privsep.start(inspect(target.pid), _private_dir(user)) as helper:
            helper.call("open_dir", create=False)
            helper.call("write", name=paths.stem(inspect(target.pid)) + ".bundle", text="{}")
        assert not os.path.exists(host_dir)
        inside = os.path.join(root, "var", "tmp", "flight_profiler-%d" % user.uid)
        assert _owned(inside, user.uid, 0o700)
        assert _owned(os.path.join(inside, paths.stem(inspect(target.pid)) + ".bundle"), user.uid, 0o600)
        attached = cli(target.pid, "module /targets/service_target.py")
        assert attached.returncode == 0, attached.stdout + attached.stderr
        assert attached.results[0]["modules"] == ["__main__"], attached.results
        assert cli(target.pid, "detach").returncode == 0
        assert not os.path.exists(host_dir)
        assert target.alive_and_running()
    finally:
        target.stop()
        shutil.rmtree(os.path.join(root, "var"), ignore_errors=True)
        for name in os.listdir(root):  # only links and empty mount points remain (the mounts died with the ns)
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
        os.rmdir(root)


# ---------------------------------------------------------------------- refusals


def test_setuid_style_target_is_refused(users: tuple[User, User]) -> None:
    user = users[0]
    code = "import os, time; os.setresuid(%d, 0, 0); print('ready', flush=True); time.sleep(600)" % user.uid
    proc = subprocess.Popen([USER_PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
    target = Proc(proc, proc.pid)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        result = cli(target.pid, "module /x.py")
        assert result.returncode != 0 and "setuid-style" in result.errors[0], result.stdout
        assert target.alive_and_running()
    finally:
        target.stop()


def test_non_dumpable_target_is_refused_unless_forced(users: tuple[User, User]) -> None:
    user = users[0]
    code = (
        "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print('ready', flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    proc = subprocess.Popen([*_as(user), USER_PYTHON, "-c", code], stdout=subprocess.PIPE, text=True, cwd="/")
    target = Proc(proc, proc.pid)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        refused = cli(target.pid, "module /x.py")
        assert refused.returncode != 0 and "non-dumpable" in refused.errors[0] and "--force" in refused.errors[0]
        forced = cli(target.pid, "module /x.py", "--force")
        assert forced.returncode == 0, forced.stdout
        assert cli(target.pid, "detach").returncode == 0
        assert target.alive_and_running()
    finally:
        target.stop()


# ---------------------------------------------------------------------- crowds


CROWD = [(v, "user") for v in ("3.8", "3.12", "3.14") if v in PYTHONS] + [
    (v, "root")
    for v in ("3.12",)
    if v in PYTHONS  # in-process file work: the same lock
]


@pytest.mark.parametrize(("version", "owner"), CROWD, ids=["%s-%s" % case for case in CROWD])
def test_twenty_first_attaches_at_once_inject_once(users: tuple[User, User], version: str, owner: str) -> None:
    if owner == "user":
        target = start_as(users[0], PYTHONS[version], "event")
    else:
        proc = subprocess.Popen(
            [PYTHONS[version], os.path.join(TARGETS, "service_target.py"), "event"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        target = Proc(proc, proc.pid)
    argv = [sys.executable, "-m", "flight_profiler", str(target.pid), "--cmd", "module /x.py", "--json", "--debug"]
    try:
        clients = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
        outputs = [client.communicate(timeout=120) for client in clients]
        assert [c.returncode for c in clients] == [0] * 20, [err for _, err in outputs]
        injections = sum(err.count("bootstrap ") for _, err in outputs)
        assert injections == 1, [err for _, err in outputs]
        assert agent_threads(target.pid).count("flight_profiler-agent") == 1
        assert cli(target.pid, "detach").returncode == 0
        assert target.alive_and_running()
    finally:
        target.stop()


_HOLD_LOCK = r"""
import fcntl, sys, time
from flight_profiler.attach import paths, privsep
from flight_profiler.attach.target import inspect
target = inspect(int(sys.argv[1]))
with privsep.start(target, paths.private_dir(target)) as helper:
    helper.call("open_dir", create=True)
    fd = helper.call("lock", name=paths.lock_name(target))[1][0]
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def test_crowd_lock_waits_with_a_reason_and_dies_with_its_holder(users: tuple[User, User]) -> None:
    user = users[0]
    target = start_as(user, USER_PYTHON, "event")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(target.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        waiting = cli(target.pid, "module /x.py", "--timeout", "2", "--debug")
        assert waiting.returncode != 0
        assert "waiting for another client's attach" in waiting.stderr
        assert "another client's attach" in waiting.errors[0]
        holder.kill()  # SIGKILL: the kernel releases its flock
        holder.wait()
        assert cli(target.pid, "module /x.py").returncode == 0
        assert cli(target.pid, "detach").returncode == 0
        assert target.alive_and_running()
    finally:
        holder.kill()
        holder.wait()
        target.stop()


def test_helper_runs_as_the_user_without_capabilities_and_not_dumpable(users: tuple[User, User]) -> None:
    user = users[0]
    target = start_as(user, USER_PYTHON, "event")
    try:
        helper = privsep.start(inspect(target.pid), _private_dir(user))
        try:
            assert helper.separated
            child = helper._child
            with open("/proc/%d/status" % child) as fh:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
            assert status["Uid"].split() == [str(user.uid)] * 4
            assert status["Gid"].split() == [str(user.gid)] * 4
            assert status["Groups"].strip() == ""
            assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
            assert os.stat("/proc/%d/maps" % child).st_uid == 0  # not dumpable: the user cannot ptrace it
            helper.call("open_dir", create=True)  # still serving after the checks
        finally:
            helper.close()
        assert not os.path.exists("/proc/%d" % child) or _zombie_or_gone(child)
    finally:
        target.stop()


# ---------------------------------------------------------------------- a group's shared helper


def _start_helpers(targets: list[tuple[Proc, User]]) -> list[privsep.Helper]:
    return [privsep.start(inspect(proc.pid), _private_dir(user)) for proc, user in targets]


def test_a_group_shares_one_helper_per_directory_and_keeps_its_attaches_apart(users: tuple[User, User]) -> None:
    procs = [(start_as(users[0], USER_PYTHON), users[0]) for _ in range(2)] + [
        (start_as(users[1], USER_PYTHON), users[1])
    ]
    try:
        with privsep.sharing():
            first, second, other = helpers = _start_helpers(procs)
            try:
                # one process for the two targets of one user, another for the other user's
                assert all(helper.separated for helper in helpers)
                assert first.connector_pid == second.connector_pid != other.connector_pid
                shared_pid = first.connector_pid
                with open("/proc/%d/status" % shared_pid) as fh:
                    status = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
                assert status["Uid"].split() == [str(users[0].uid)] * 4
                assert int(status["CapEff"], 16) == 0
                assert os.stat("/proc/%d/maps" % shared_pid).st_uid == 0  # not dumpable
                # each attach has its own session: a directory one opened is not the other's
                first.call("open_dir", create=True)
                with pytest.raises(AttachError, match="not opened"):
                    second.call("lexists", name="x")
                # attach threads calling at once: every reply and descriptor is the caller's own
                sessions = [privsep.start(inspect(procs[i % 2][0].pid), _private_dir(users[0])) for i in range(8)]
                mixed: list[str] = []

                def work(helper: privsep.Helper, number: int) -> None:
                    try:
                        helper.call("open_dir", create=True)
                        for i in range(30):
                            name = "agent-0-%d-%d.x" % (number, i)
                            helper.call("write", name=name, text=name)
                            fd = helper.call("lock", name=name + ".lock")[1][0]
                            inode = helper.call("lock_inode", name=name + ".lock")[0]["inode"]
                            if os.fstat(fd).st_ino != inode or not helper.call("lexists", name=name)[0]["exists"]:
                                mixed.append(name)
                            os.close(fd)
                            helper.call("remove", names=[name, name + ".lock"])
                    except AttachError as exc:
                        mixed.append(str(exc))

                threads = [threading.Thread(target=work, args=(helper, n)) for n, helper in enumerate(sessions)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(60)
                assert mixed == []
                assert {helper.connector_pid for helper in sessions} == {shared_pid}
                for helper in sessions:
                    helper.close()
            finally:
                for helper in helpers:
                    helper.close()
        assert _zombie_or_gone(shared_pid)  # the group's end ends it
        for proc, _ in procs:
            assert proc.alive_and_running()
    finally:
        for proc, _ in procs:
            proc.stop()


def test_a_dead_shared_helper_fails_only_the_attaches_using_it(users: tuple[User, User]) -> None:
    procs = [(start_as(users[0], USER_PYTHON), users[0]) for _ in range(2)] + [
        (start_as(users[1], USER_PYTHON), users[1])
    ]
    try:
        with privsep.sharing():
            helpers = _start_helpers(procs)
            try:
                for helper in helpers:
                    helper.call("open_dir", create=True)
                os.kill(helpers[0].connector_pid, signal.SIGKILL)  # e.g. by the user, whose uid it runs as
                for helper in helpers[:2]:
                    with pytest.raises(
                        AttachError, match=r"^the helper working in the target user's directory went away$"
                    ):
                        helper.call("lexists", name="x")
                assert helpers[2].call("lexists", name="x")[0] == {"exists": False}
                with privsep.start(inspect(procs[0][0].pid), _private_dir(users[0])) as again:  # a fresh one
                    assert again.connector_pid != helpers[0].connector_pid
                    assert again.call("open_dir", create=False)[0]["exists"] is True
            finally:
                for helper in helpers:
                    helper.close()
    finally:
        for proc, _ in procs:
            proc.stop()


def test_a_group_of_another_users_processes_attaches_through_shared_helpers(users: tuple[User, User]) -> None:
    """The whole CLI over a group: two users' targets (and a 3.14 one, whose remote_exec gets a helper of
    its own), each answering with its own data."""
    procs = [start_as(users[0], USER_PYTHON, "busy") for _ in range(3)] + [start_as(users[1], USER_PYTHON, "busy")]
    if "3.14" in PYTHONS:
        procs.append(start_as(users[0], PYTHONS["3.14"], "busy"))
    pids = ",".join(str(proc.pid) for proc in procs)
    argv = [sys.executable, "-m", "flight_profiler", "-p", pids, "--json", "--debug"]
    try:
        result = subprocess.run(
            [*argv, "--cmd", "getglobal os sep -e \"__import__('os').getpid()\""],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        answers = {r["target"]["pid"]: r["result"]["value"].get("v") for r in records if "result" in r}
        assert answers == {proc.pid: proc.pid for proc in procs}, records
        if "3.14" in PYTHONS:
            assert "remote_exec" in result.stderr
        detached = subprocess.run([*argv, "--cmd", "detach"], capture_output=True, text=True, timeout=120)
        assert detached.returncode == 0, detached.stderr
        assert wait_until(lambda: not any(agent_threads(proc.pid) for proc in procs), timeout=30)
        for proc in procs:
            assert proc.alive_and_running()
    finally:
        for proc in procs:
            proc.stop()


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
