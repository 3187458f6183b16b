"""The agent's peer check across pid namespaces, with a real user and a real namespace.

The kernel shows a peer outside the agent's pid namespace as pid 0. Root's client
reaches a containerised target from the host through a helper that dropped to the
target's uid, so the agent lets in its own uid (or root) from outside its
namespace when the hello carries a descriptor of the agent's mount namespace (which
only a process that sees the target can open); inside it, the pid a client claims
must be its SO_PEERCRED pid.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Iterator

import pytest

from flight_profiler.attach import paths
from flight_profiler.attach.target import inspect
from support import TARGETS, cli, user_name

PYTHON = "/usr/bin/python3.11"  # readable by an unprivileged user, unlike pyenv's under /root
USER = user_name("fph3a")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(PYTHON), reason="needs root and a system python3.11"
)

_HELLO = r"""
import os, socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.settimeout(10)
sock.connect(sys.argv[1])
hello = b'{"type":"hello","protocol":1}\n'
try:
    if len(sys.argv) > 2:  # a descriptor of this file goes with the hello (SCM_RIGHTS)
        fd = os.open(sys.argv[2], os.O_RDONLY)
        sock.sendmsg([hello], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
    else:
        sock.sendall(hello)
except BrokenPipeError:
    pass  # refused at accept: the answer is queued for us anyway
print(sock.recv(4096).decode().strip())
"""


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    subprocess.run(["userdel", USER], check=False, capture_output=True)  # left by an interrupted run
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], check=False, capture_output=True)


@pytest.fixture(scope="module")
def namespaced(user: pwd.struct_passwd) -> Iterator[int]:
    """A target of the unprivileged user, alone in a new pid namespace; yields its pid as we see it."""
    drop = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups"]
    proc = subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            *drop,
            PYTHON,
            os.path.join(TARGETS, "service_target.py"),
            "event",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    pid = 0
    try:
        assert proc.stdout.readline().startswith("ready")
        pid = _only_child(proc.pid)
        assert inspect(pid).ns_pid == 1 and inspect(pid).uid == user.pw_uid
        yield pid
        cli(pid, "detach")
    finally:
        if pid:
            os.kill(pid, 9)  # the target itself: killing unshare alone may leave it running
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _only_child(pid: int) -> int:
    for _ in range(100):
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            children = fh.read().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("unshare started no child")


def _hello_as(
    user: pwd.struct_passwd, socket_path: str, enter_pid: int | None, proof: str = "", sibling: bool = False
) -> str:
    """The agent's first answer to a hello sent as ``user``: from the host (``enter_pid`` None), from inside
    the target's pid namespace, or (``sibling``) from a pid namespace and /proc of its own, as another
    container of a pod; ``proof``: a file whose descriptor goes with the hello."""
    drop = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups"]
    enter = ["nsenter", "--target", str(enter_pid), "--pid"] if enter_pid else []
    if sibling:
        enter = ["unshare", "--pid", "--fork", "--mount-proc"]
    argv = [*enter, *drop, PYTHON, "-c", _HELLO, socket_path, *([proof] if proof else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_root_from_the_host_and_the_targets_user_get_in(user: pwd.struct_passwd, namespaced: int) -> None:
    attached = cli(namespaced, "getglobal __main__ CONFIG")
    assert attached.returncode == 0, attached.stderr  # root, seen by the agent as pid 0: allowed
    info = inspect(namespaced)
    socket_path = paths.from_client(info, paths.socket_in_target(info))

    # own uid, from outside: it sees the target, so it can show it shares the target's mount namespace
    outside = _hello_as(user, socket_path, enter_pid=None, proof="/proc/%d/ns/mnt" % namespaced)
    assert '"type": "hello"' in outside or '"type":"hello"' in outside, outside

    inside = _hello_as(user, socket_path, enter_pid=namespaced)
    assert '"type": "hello"' in inside or '"type":"hello"' in inside, inside  # the same user, inside: fine

    assert cli(namespaced, "getglobal __main__ CONFIG").returncode == 0  # the agent is unharmed


def test_its_own_user_in_another_container_is_refused(user: pwd.struct_passwd, namespaced: int) -> None:
    """A process of the target's uid in a pid namespace and /proc of its own (another container of a pod,
    sharing the pod's /dev/shm where the socket is when /tmp is read-only) reaches the socket but cannot
    see the target: it was let in as a pid-0 peer like root's client from the host."""
    assert cli(namespaced, "getglobal __main__ CONFIG").returncode == 0
    info = inspect(namespaced)
    socket_path = paths.from_client(info, paths.socket_in_target(info))
    for said in (
        _hello_as(user, socket_path, enter_pid=None),  # no descriptor at all
        _hello_as(user, socket_path, enter_pid=None, sibling=True, proof="/proc/self/ns/mnt"),  # its own
    ):
        assert '"type":"error"' in said.replace(" ", "") and "descriptor of its mount namespace" in said, said
    assert cli(namespaced, "getglobal __main__ CONFIG").returncode == 0  # the agent is unharmed
