"""Nobody but the target's user (or root) gets in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flight_profiler.attach.paths import agent_socket
from interpreters import find_interpreters
from support import cli, start_target

INTERPRETERS = find_interpreters()

# A process that can reach the socket (fsuid 0 passes the 0700 directory) but
# whose effective uid, which SO_PEERCRED reports, is nobody's.
_AS_NOBODY = r"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.setresuid(65534, 65534, 0) == 0
libc.setfsuid(0)
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
try:
    sock.sendall(b'{"type":"hello","protocol":1}\n')
except BrokenPipeError:
    pass  # the agent may refuse and close before we write: its refusal is still queued for us
print(sock.recv(4096).decode().strip())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch uid")
def test_other_uid_is_refused_by_peercred() -> None:
    target = start_target(INTERPRETERS[-1][1], "service_target.py", "event")
    try:
        assert cli(target.pid, "module /x.py").returncode == 0
        sock = agent_socket(target.pid)
        proc = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, sock], capture_output=True, text=True, timeout=30, check=False
        )
        assert "permission denied" in proc.stdout, (proc.stdout, proc.stderr)
        assert cli(target.pid, "module /x.py").returncode == 0  # the agent is still fine
        cli(target.pid, "detach")
    finally:
        target.stop()


def test_no_tcp_listener_in_target() -> None:
    target = start_target(INTERPRETERS[-1][1], "service_target.py", "event")
    try:
        before = _tcp_listeners(target.pid)
        assert cli(target.pid, "module /x.py").returncode == 0
        assert _tcp_listeners(target.pid) == before
        cli(target.pid, "detach")
    finally:
        target.stop()


def _tcp_listeners(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    listening = set()
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as fh:
            for line in fh.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    listening.add(cols[1])
    return listening
