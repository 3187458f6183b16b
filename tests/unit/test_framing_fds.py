"""The hello's descriptor (protocol/framing): sent along the first byte, read with it, the message intact."""

from __future__ import annotations

import _socket
import os
import sys

from flight_profiler.protocol.framing import Channel


def _pair() -> tuple[Channel, Channel]:
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return Channel(ours), Channel(theirs)


def test_a_descriptor_comes_with_the_first_bytes_and_the_message_stays_whole(tmp_path: object) -> None:
    client, agent = _pair()
    path = os.path.join(str(tmp_path), "x")
    with open(path, "w"):
        pass
    fd = os.open(path, os.O_RDONLY)
    try:
        client.send_with_fd({"type": "hello", "protocol": 1}, fd)
        got = agent.recv_first_with_fds(5.0, 2)
        assert len(got) == 1 and os.fstat(got[0]).st_ino == os.stat(path).st_ino
        os.close(got[0])
        assert agent.recv(5.0) == {"type": "hello", "protocol": 1}
    finally:
        os.close(fd)
        client.close()
        agent.close()


def test_no_descriptor_is_an_empty_list_and_extra_ones_are_closed_by_the_kernel() -> None:
    client, agent = _pair()
    try:
        client.send({"type": "hello"})
        assert agent.recv_first_with_fds(5.0, 2) == []
        assert agent.recv(5.0) == {"type": "hello"}
        fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        client.sock.sendmsg([b'{"type":"x"}\n'], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        for fd in fds:
            os.close(fd)
        got = agent.recv_first_with_fds(5.0, 2)  # room for two: the rest never become ours
        assert len(got) <= 2
        for fd in got:
            os.close(fd)
        assert agent.recv(5.0) == {"type": "x"}
    finally:
        client.close()
        agent.close()
