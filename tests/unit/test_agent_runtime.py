"""The agent's own runtime pieces, in this process: C-level JSON, real-thread events, the claim ticket, the loader."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
import threading

import pytest

from flight_profiler.attach import bootstrap, bundle, privsep, ticket
from flight_profiler.protocol import framing
from flight_profiler.services import realthreads


def test_framing_ignores_a_replaced_json(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("patched")

    monkeypatch.setattr(json, "dumps", refuse)
    monkeypatch.setattr(json, "loads", refuse)
    msg = {"type": "event", "job": 1, "data": {"v": [1, 2.5, None, True, "é\n"], "o": object()}}
    line = framing.encode(msg)
    assert line.isascii() and b"\n" not in line
    back = framing.decode(line.decode())
    assert back["data"]["v"] == [1, 2.5, None, True, "é\n"]
    assert back["data"]["o"].startswith("<object object")


@pytest.mark.parametrize("text", ["", "{", '{"a":1} x', "[1,]", "{'a': 1}"])
def test_framing_rejects_what_is_not_one_json_value(text: str) -> None:
    with pytest.raises(ValueError):
        framing.decode(text)


@pytest.mark.parametrize("text", ['{"a" 1}', '"\\x"'])
def test_framing_rejects_bad_json_where_json_decoder_is_not_loaded(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    # a target that never imported json: 3.10 and 3.11's scanner then fails without its error set
    monkeypatch.delitem(sys.modules, "json.decoder", raising=False)
    with pytest.raises(ValueError):
        framing.decode(text)


def test_framing_refuses_cycles() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        framing.encode({"type": "x", "v": cyclic})


def test_event_wakes_a_waiter_on_another_thread() -> None:
    event = realthreads.Event()
    assert event.wait(0.01) is False
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(event.wait(30)))
    thread.start()
    event.set()
    thread.join(30)
    assert woke == [True] and event.is_set()
    event.clear()
    assert not event.is_set()


def test_thread_runs_swallows_and_joins() -> None:
    def boom() -> None:
        raise RuntimeError("must not reach stderr")

    worker = realthreads.Thread(boom, "flight_profiler-test")
    worker.start()
    assert worker.join(30)
    assert not worker.is_current()


def _workspace(tmp_path: str) -> privsep.Workspace:
    """The helper's file operations, in this process (as the client does when it is the target's user)."""
    workspace = privsep.Workspace(os.path.join(str(tmp_path), "fp"), in_process=True)
    workspace.op_open_dir(create=True)
    return workspace


def _withdraw(workspace: privsep.Workspace, name: str) -> str:
    return str(workspace.op_ticket_withdraw(name)[0]["outcome"])


def _refused_for_fds(workspace: privsep.Workspace, name: str) -> bool:
    return bool(workspace.op_lexists(name + ticket.NOFD_SUFFIX)[0]["exists"])


def test_ticket_withdrawn_before_the_bootstrap(tmp_path: str) -> None:
    workspace = _workspace(tmp_path)
    path = os.path.join(workspace.directory, "agent-1.ticket")
    workspace.op_ticket_issue("agent-1.ticket")
    assert _withdraw(workspace, "agent-1.ticket") == ticket.WITHDRAWN
    assert not os.path.exists(path)


def test_ticket_claimed_by_the_bootstrap(tmp_path: str) -> None:
    workspace = _workspace(tmp_path)
    path = os.path.join(workspace.directory, "agent-1.ticket")
    workspace.op_ticket_issue("agent-1.ticket")
    os.rename(path, path + ticket.CLAIMED_SUFFIX)  # what the bootstrap does
    os.unlink(path + ticket.CLAIMED_SUFFIX)  # what its thread does once it has the GIL
    assert _withdraw(workspace, "agent-1.ticket") == ticket.CLAIMED


def test_ticket_withdrawn_while_the_agent_thread_waits_for_the_gil(tmp_path: str) -> None:
    workspace = _workspace(tmp_path)
    path = os.path.join(workspace.directory, "agent-1.ticket")
    workspace.op_ticket_issue("agent-1.ticket")
    os.rename(path, path + ticket.CLAIMED_SUFFIX)  # the bootstrap ran, its thread has not run yet
    assert _withdraw(workspace, "agent-1.ticket") == ticket.WITHDRAWN
    assert not os.path.exists(path + ticket.CLAIMED_SUFFIX)


def test_ticket_refused_for_fds(tmp_path: str) -> None:
    workspace = _workspace(tmp_path)
    path = os.path.join(workspace.directory, "agent-1.ticket")
    workspace.op_ticket_issue("agent-1.ticket")
    os.rename(path, path + ticket.NOFD_SUFFIX)  # what the bootstrap does without a free fd
    assert _refused_for_fds(workspace, "agent-1.ticket")
    assert _withdraw(workspace, "agent-1.ticket") == ticket.NO_FDS
    workspace.op_ticket_issue("agent-1.ticket")  # a stale marker of a killed client does not block the next attach
    assert not _refused_for_fds(workspace, "agent-1.ticket")


def test_ticket_is_never_written_through_a_link(tmp_path: str) -> None:
    workspace = _workspace(tmp_path)
    victim = os.path.join(str(tmp_path), "victim")
    with open(victim, "w") as fh:
        fh.write("keep")
    os.symlink(victim, os.path.join(workspace.directory, "agent-1.ticket.claimed"))
    workspace.op_ticket_issue("agent-1.ticket")  # the planted link is removed, never followed
    with open(victim) as fh:
        assert fh.read() == "keep"
    assert not os.path.lexists(os.path.join(workspace.directory, "agent-1.ticket.claimed"))


def test_free_fds_of_this_process() -> None:
    found = ticket.free_fds(os.getpid())
    assert found is not None and 0 < found[0] <= found[1]


def without_coverage() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}


def test_bootstrap_runs_once_per_ticket_and_loads_without_the_import_system(tmp_path: str) -> None:
    """In a fresh interpreter: the agent starts once, sys.path/meta_path/importer cache untouched."""
    workspace = _workspace(tmp_path)
    sock = os.path.join(workspace.directory, "agent-1.sock")
    workspace.op_write(os.path.basename(bootstrap.bundle_path(sock)), bundle.text())
    claim = ticket.new_name("agent-1")
    workspace.op_ticket_issue(claim)
    source = bootstrap.source(sock, 4102444800.0, claim)
    script = (
        "import sys, time, os, threading\n"
        "before = (list(sys.path), list(sys.meta_path), dict(sys.path_importer_cache))\n"
        "exec(%r)\nexec(%r)\n"  # twice: the second run finds no ticket
        "deadline = time.time() + 30\n"
        "while not os.path.exists(%r) and time.time() < deadline: time.sleep(0.01)\n"
        "print(os.path.exists(%r), before == (list(sys.path), list(sys.meta_path), dict(sys.path_importer_cache)))\n"
        "print([t.name for t in threading.enumerate()].count('flight_profiler-agent') == 1)\n"
    ) % (source, source, sock, sock)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=without_coverage(),  # a measured child starts coverage first, which changes sys.path & co.
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True"], proc.stdout
    assert "_flight_profiler" not in proc.stderr and "__future__" not in proc.stderr, proc.stderr
    assert not os.path.exists(bootstrap.ticket_path(sock, claim))
    assert not os.path.exists(bootstrap.ticket_path(sock, claim) + ticket.CLAIMED_SUFFIX)


def test_the_agent_socket_is_made_private_without_the_process_umask(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The umask is the whole process's: set around bind, a file the program's threads made meanwhile
    would have kept our 0177 for good."""
    from flight_profiler.agent import server

    calls: list[int] = []
    real = os.umask

    def recorded(mask: int) -> int:
        calls.append(mask)
        return real(mask)

    monkeypatch.setattr(os, "umask", recorded)
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    listener = server._listen(str(directory / "agent.sock"))
    try:
        assert calls == []
        assert stat.S_IMODE(os.stat(directory / "agent.sock").st_mode) == 0o600
    finally:
        listener.close()
