"""The escaper, the console gate, the bounded decoder and the private output files, without a target."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
from typing import Any

import pytest
from rich.table import Table
from rich.text import Text

from flight_profiler.attach import wire
from flight_profiler.attach.connection import AgentConnection, check_peer, check_socket_path, peer_of
from flight_profiler.commands import outfile
from flight_profiler.errors import ProtocolError, UsageError
from flight_profiler.protocol.framing import FrameError
from flight_profiler.render.console import make_console
from flight_profiler.render.safe import safe_block, safe_line
from flight_profiler.render.values import pretty

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear screen
    "\x1b]0;owned\x07",  # window title
    "\x1b]52;c;aWQK\x07",  # clipboard
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",  # hyperlink
    "\x1bP+q\x1b\\",  # DCS
    "\x9b31m",  # C1 CSI
    "\x7f\x00\x08",
    "abc\u202edcba\u2066x\u2069",  # BiDi override and isolate
    "zero\u200bwidth\u2028line\u2029para\ufeff",
    "\ud800",  # a lone surrogate (JSON can carry one)
]


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_line_leaves_no_control_character(text: str) -> None:
    shown = safe_line(text)
    assert shown.isprintable(), repr(shown)
    assert "\x1b" not in shown and "\n" not in shown


def test_escapes_are_readable_and_plain_text_unchanged() -> None:
    assert safe_line("\x1b]0;t\x07") == "\\x1b]0;t\\x07"
    assert safe_line("a\u202eb") == "a\\u202eb"
    assert safe_line("two\nlines\t") == "two\\nlines\\t"
    assert safe_block("two\nlines\tx\x1b") == "two\nlines\tx\\x1b"
    assert safe_line("ordinary [red]text[/red] é 漢字") == "ordinary [red]text[/red] é 漢字"


def _printed(renderable: object, color: bool) -> str:
    buffer = io.StringIO()
    console = make_console(color=color, file=buffer, width=200)
    console.print(renderable)
    return buffer.getvalue()


@pytest.mark.parametrize("text", HOSTILE)
def test_console_gate_escapes_whatever_a_renderer_passes(text: str) -> None:
    """Even a renderer that forgot to escape cannot put a control character on the terminal."""
    plain = _printed(Text("x" + text, style="bold"), color=False)
    assert "\x1b" not in plain and "\x9b" not in plain and "\u202e" not in plain
    table = Table()
    table.add_column("type")
    table.add_row(text)  # a str cell: rich would parse markup here
    assert "\x1b" not in _printed(table, color=False)


def test_characters_rich_deletes_are_shown_escaped_by_every_renderer() -> None:
    """rich deletes BEL, BS, VT, FF and CR from the strings it is given, before the console's gate sees
    them: a thread named "bell<BEL>cr<CR>end" showed as "bellcrend". The runner escapes them first."""
    from flight_profiler.cli import registry
    from flight_profiler.cli.runner import _rendered

    name = "bell\x07cr\rend\x08\x0b\x0c"
    thread = {"tid": 7, "name": name, "cpu": 0.0, "state": "sleeping", "detail": "", "owns_gil": False, "python": True}
    event: dict[str, Any] = {
        "pid": 1,
        "total": 1,
        "interval_ms": 100,
        "mode": "all",
        "threads": [{**thread, "main": False}],
    }
    spec = registry.get("thread")
    assert spec is not None
    out = _printed(_rendered(spec, event, False), color=False)
    assert "bell\\x07cr\\rend\\x08\\x0b\\x0c" in out, out
    assert event["threads"][0]["name"] == name  # the event itself (--json prints it) is untouched


def test_a_values_string_shows_those_characters_as_repr_does_once() -> None:
    """A value's string is shown by repr(), which escapes them itself: escaped before it as well, a BEL
    showed as '\\x07' (a backslash that the string does not hold) and a CR as '\\r'."""
    from flight_profiler.cli import registry
    from flight_profiler.cli.runner import _rendered

    text = "\x07a\r\x08\x0b\x0c\x1b"
    key = {"t": "str", "v": text}
    event = {"name": "m.X", "type": "dict", "expand": 1, "value": {"t": "dict", "kind": "dict", "items": [[key, key]]}}
    spec = registry.get("getglobal")
    assert spec is not None
    out = _printed(_rendered(spec, event, False), color=False)
    assert "{%s: %s}" % (repr(text), repr(text)) in out, out
    assert "\\\\" not in out, out


def test_markup_and_links_from_the_target_stay_text() -> None:
    table = Table(box=None)
    table.add_column("type")
    table.add_row("[red]x[/red] [link=http://evil.example]y[/link] :smile:")
    out = _printed(table, color=False)
    assert "[red]x[/red]" in out and "[link=http://evil.example]y[/link]" in out and ":smile:" in out
    colored = _printed(Text("hi", style="link http://evil.example"), color=True)
    assert "\x1b]8" not in colored  # no OSC 8: we never make links, so one could only come from the target


def test_color_output_has_only_our_style_sequences() -> None:
    out = _printed(Text("\x1b]52;c;aWQK\x07 name", style="bold red"), color=True)
    assert "\x1b]" not in out and "\x07" not in out
    assert "\\x1b]52" in out


def test_value_trees_escape_type_attribute_and_repr_text() -> None:
    node = {
        "t": "Evil\x1b[2J",
        "kind": "object",
        "attrs": {"\u202efield": {"r": "<\x1b]0;title\x07>"}, "ok": {"t": "str", "v": "\x1b[31m"}},
    }
    text = pretty(node)
    assert text.isprintable(), repr(text)


def test_nesting_is_measured_outside_strings() -> None:
    assert wire.nesting(b'{"a": "' + b"[" * 5000 + b'"}') == 1
    deep = b'{"type":"event","data":' + b"[" * 600 + b"]" * 600 + b"}"
    assert wire.nesting(deep) > wire.MAX_DEPTH
    with pytest.raises(FrameError, match="nested too deeply"):
        wire.decode(deep)
    ok = b'{"type":"event","data":' + b"[" * 400 + b"]" * 400 + b"}"
    assert wire.decode(ok)["type"] == "event"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[1, 2]", "without a type"),
        (b'{"type": 3}', "without a type"),
        (b'{"a": "\\q"}', "invalid JSON"),
    ],
)
def test_malformed_lines_are_one_line_frame_errors(line: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        wire.decode(line)
    assert "\n" not in str(caught.value)


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours, theirs


def test_reader_refuses_an_oversized_line_reading_at_most_the_limit() -> None:
    ours, theirs = _pair()
    reader = wire.BoundedReader(ours, max_message=1000)
    sender = threading.Thread(target=lambda: _send_quietly(theirs, b"x" * 100000), daemon=True)
    sender.start()
    with pytest.raises(FrameError, match="too large"):
        reader.recv()
    assert len(reader._buf) <= 1001
    ours.close()
    theirs.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_reader_deadline_holds_against_a_drip() -> None:
    """A byte now and then never extends the deadline (the deadline is already past here)."""
    import time

    ours, theirs = _pair()
    theirs.sendall(b'{"type"')
    reader = wire.BoundedReader(ours)
    with pytest.raises(wire.Deadline):
        reader.recv(time.monotonic() - 1)
    theirs.sendall(b': "hello", "protocol": 1}\n')
    assert reader.recv(None)["type"] == "hello"
    ours.close()
    theirs.close()


def test_socket_path_must_be_a_socket_not_a_link(tmp_path: object) -> None:
    base = str(tmp_path)
    regular = os.path.join(base, "file")
    open(regular, "w").close()
    link = os.path.join(base, "link")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    real = os.path.join(base, "real.sock")
    server.bind(real)
    server.listen(1)
    os.symlink(real, link)
    with pytest.raises(ProtocolError, match="symbolic link"):
        check_socket_path(link)
    with pytest.raises(ProtocolError, match="not a socket"):
        check_socket_path(regular)
    with pytest.raises(FileNotFoundError):
        check_socket_path(os.path.join(base, "absent"))
    check_socket_path(real)
    with pytest.raises(ProtocolError, match="symbolic link"):
        AgentConnection.open(link, timeout=1.0)
    server.close()


def test_peer_must_be_the_target_process(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    peer = peer_of(client)
    assert (peer.pid, peer.uid) == (os.getpid(), os.geteuid())
    check_peer(peer, os.getpid(), os.geteuid(), path)
    with pytest.raises(ProtocolError, match="answered by pid %d" % os.getpid()):
        check_peer(peer, os.getpid() + 100000, None, path)
    with pytest.raises(ProtocolError, match="uid"):
        check_peer(peer._replace(uid=4242), os.getpid(), 4343, path)
    with pytest.raises(ProtocolError, match="outside our pid namespace"):
        check_peer(peer._replace(pid=0), os.getpid(), None, path)
    with pytest.raises(ProtocolError, match="not by the target pid 1"):
        AgentConnection.open(path, timeout=1.0, expected_pid=1)  # refused before anything is sent
    first, _ = server.accept()
    refused, _ = server.accept()
    refused.settimeout(5)
    assert refused.recv(1) == b""  # the refused connection sent nothing at all: EOF
    client.close()
    first.close()
    refused.close()
    server.close()


def test_output_file_is_private_and_never_followed(tmp_path: object) -> None:
    base = str(tmp_path)
    os.chmod(base, 0o1777)  # a shared, sticky directory like /tmp
    victim = os.path.join(base, "victim")
    with open(victim, "w") as fh:
        fh.write("keep")
    link = os.path.join(base, "out.txt")
    os.symlink(victim, link)
    with pytest.raises(UsageError, match="symbolic link"):
        outfile.check_destination(link)
    with pytest.raises(UsageError, match="symbolic link"):
        outfile.write_text(link, "stacks")
    assert _read(victim) == "keep" and os.path.islink(link)

    old = os.umask(0)
    try:
        fresh = os.path.join(base, "fresh.txt")
        outfile.write_text(fresh, "one")
        assert stat.S_IMODE(os.lstat(fresh).st_mode) == 0o600 and _read(fresh) == "one"
        outfile.write_text(fresh, "two")  # our own file: replaced
        assert _read(fresh) == "two" and stat.S_IMODE(os.lstat(fresh).st_mode) == 0o600
    finally:
        os.umask(old)
    assert sorted(os.listdir(base)) == ["fresh.txt", "out.txt", "victim"]  # no staging directory left


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def test_output_file_of_another_user_is_refused(tmp_path: object) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a file of another uid")
    path = os.path.join(str(tmp_path), "theirs.txt")
    open(path, "w").close()
    os.chown(path, 4242, 4242)
    with pytest.raises(UsageError, match="belongs to uid 4242"):
        outfile.write_text(path, "x")


def test_history_file_is_private(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from flight_profiler.cli.shell import private_history

    path = os.path.join(str(tmp_path), "history")
    old = os.umask(0)
    try:
        private_history(path)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        os.chmod(path, 0o644)
        private_history(path)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        os.umask(old)
    target = os.path.join(str(tmp_path), "elsewhere")
    open(target, "w").close()
    os.chmod(target, 0o644)
    linked = os.path.join(str(tmp_path), "linked")
    os.symlink(target, linked)
    from prompt_toolkit.history import InMemoryHistory

    assert isinstance(private_history(linked), InMemoryHistory)  # never through a link
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_json_output_escapes_every_control_character() -> None:
    line = json.dumps({"result": HOSTILE})
    assert line.isprintable() and json.loads(line)["result"] == HOSTILE


def _owned_by(path: str, uid: int) -> None:
    os.lchown(path, uid, uid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory or a link to another user")
def test_output_file_through_a_directory_another_user_controls_is_refused(tmp_path: object) -> None:
    """Another user could swap what lies on the way for a link between our check and our write
    (root's file would land in /etc): their directory, their link on the way, or a directory others may
    write without the sticky bit, is refused; a sticky shared directory, and root's link, are not."""
    base = str(tmp_path)
    theirs = os.path.join(base, "theirs")
    os.mkdir(theirs)
    _owned_by(theirs, 4242)
    with pytest.raises(UsageError, match=r"the directory .*theirs belongs to uid 4242"):
        outfile.check_destination(os.path.join(theirs, "out.txt"))
    with pytest.raises(UsageError, match="belongs to uid 4242"):
        outfile.write_text(os.path.join(theirs, "out.txt"), "x")
    assert os.listdir(theirs) == []  # not even a staging directory

    ours = os.path.join(base, "ours")
    os.mkdir(ours)
    their_link = os.path.join(base, "their-link")
    os.symlink(ours, their_link)
    _owned_by(their_link, 4242)
    with pytest.raises(UsageError, match="their-link is a link of uid 4242"):
        outfile.write_text(os.path.join(their_link, "out.txt"), "x")
    assert os.listdir(ours) == []

    open_dir = os.path.join(base, "open")
    os.mkdir(open_dir)
    os.chmod(open_dir, 0o777)
    with pytest.raises(UsageError, match=r"others may write the directory .*open"):
        outfile.write_text(os.path.join(open_dir, "out.txt"), "x")

    root_link = os.path.join(base, "root-link")
    os.symlink(ours, root_link)  # root's own link: followed
    outfile.write_text(os.path.join(root_link, "out.txt"), "fine")
    assert _read(os.path.join(ours, "out.txt")) == "fine"
    os.chmod(open_dir, 0o1777)  # sticky, like /tmp: others cannot rename what is ours
    outfile.write_text(os.path.join(open_dir, "out.txt"), "fine")
    assert _read(os.path.join(open_dir, "out.txt")) == "fine"
