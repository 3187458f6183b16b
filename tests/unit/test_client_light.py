"""What the light client (issue 14) does instead of importing a module gives what that module gives.

typing.NamedTuple -> flight_profiler.named; json.dumps(default=repr) -> cli.output.dumps; json.loads
of the agent's lines -> attach.wire.decode (json only to word a refusal); shlex.split of a word
without quotes -> the word; argparse's gettext -> the label where no catalog can be found.
"""

from __future__ import annotations

import argparse
import gettext
import json
import os
import random
import shlex
import subprocess
import sys
import typing
from typing import Any

import pytest

from flight_profiler import named
from flight_profiler.attach import wire
from flight_profiler.attach.connection import Peer
from flight_profiler.attach.target import Target
from flight_profiler.cli import main as cli_main
from flight_profiler.cli.output import dumps
from flight_profiler.commands import spec
from flight_profiler.protocol.framing import FrameError


def _shape(base: Any) -> type:
    class Shape(base):  # type: ignore[misc, valid-type]
        """The docstring stays."""

        a: int
        b: tuple[int, ...] = ()
        c: bool = True

        @property
        def both(self) -> tuple[int, tuple[int, ...]]:
            return (self.a, self.b)

    return Shape  # type: ignore[no-any-return]


def _described(cls: type) -> tuple[object, ...]:
    one = cls(1, c=False)
    return (
        cls.__mro__[1:],
        cls._fields,  # type: ignore[attr-defined]
        cls._field_defaults,  # type: ignore[attr-defined]
        cls.__doc__,
        cls.__name__,
        repr(one),
        repr(one._replace(a=5)),
        type(one._replace(a=5)) is cls,
        one.both,
        one == (1, (), False),
        hash(one) == hash((1, (), False)),
        one._asdict(),
        hasattr(one, "__dict__"),
        repr(cls._make([2, (3,), True])),  # type: ignore[attr-defined]
    )


def test_named_tuples_are_typings() -> None:
    assert _described(_shape(named.NamedTuple)) == _described(_shape(typing.NamedTuple))


@pytest.mark.parametrize("base", [named.NamedTuple, typing.NamedTuple])
def test_named_tuples_refuse_what_typing_refuses(base: Any) -> None:
    with pytest.raises(TypeError):

        class Late(base):  # type: ignore[misc, valid-type]
            a: int = 1
            b: int

    with pytest.raises(AttributeError):

        class Replaced(base):  # type: ignore[misc, valid-type]
            a: int

            def _replace(self) -> None:
                pass


def test_the_clients_named_tuples() -> None:
    assert Peer(1, 2, 3) == (1, 2, 3) and Peer(1, 2, 3)._replace(uid=7).uid == 7
    target = Target(pid=5, uid=6, version=(3, 12), exe="", ns_pid=5, same_root=True)
    assert target._fields[-1] == "dumpable" and target.dumpable and target.identity == (0, 5, 0)
    assert repr(target).startswith("Target(pid=5, uid=6, version=(3, 12)")


class _Odd:
    def __repr__(self) -> str:
        return "<odd \u00e9>"


DOCUMENTS: list[dict[Any, Any]] = [
    {"a": 1, "b": [1.5, float("nan"), float("inf"), -float("inf"), 1e300, -0.0, 10**30], "c": None, "d": True},
    {"s": 'caf\u00e9 \u2028 \x00 "q" \\ \U0001f600', 1: "int key", 2.5: "float key", None: "none", False: "f"},
    {"odd": _Odd(), "set": {1}, "bytes": b"x", "tuple": (1, 2), "nested": {"x": [{"y": []}]}},
    {},
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_output_dumps_is_json_dumps_with_repr(document: dict[Any, Any]) -> None:
    assert dumps(document) == json.dumps(document, default=repr)


def test_output_dumps_refuses_a_cycle_as_json_does() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError) as ours:
        dumps(loop)
    with pytest.raises(ValueError) as theirs:
        json.dumps(loop, default=repr)
    assert str(ours.value) == str(theirs.value)


LINES = [
    b'{"type": "x", "v": [1, 2.5, NaN, Infinity, -Infinity, "\\u00e9", 1e999, -0]}',
    b' {"type":"y"} \r\t',
    b'\xef\xbb\xbf{"type":"x"}',
    b'{"type": "x"} extra',
    b'{"type": "x"',
    b"",
    b"[1]",
    b'{"type": 1}',
    b"\xff",
    b'{"type":"x","s":"a\x01"}',
    b'{"type":"x",}',
    b'{"type":"x", "n": -}',
    b'{"type":"\\ud800"}',
    b'{"type":"x"}{"type":"x"}',
]


@pytest.mark.parametrize("line", LINES)
def test_agent_lines_decode_as_json_loads_decodes_them(line: bytes) -> None:
    try:
        ours = repr(wire.decode(line))
    except FrameError as exc:
        ours = "refused: %s" % exc
    try:
        message = json.loads(line.decode("utf-8"))
    except ValueError as exc:
        theirs = "refused: invalid JSON from the agent: %s" % str(exc).splitlines()[0]
    else:
        typed = isinstance(message, dict) and isinstance(message.get("type"), str)
        theirs = repr(message) if typed else "refused: message without a type"
    assert ours == theirs


def test_agent_lines_are_refused_in_a_client_that_never_imported_json() -> None:
    """Before 3.12 the C scanner cannot raise its JSONDecodeError until json.decoder is loaded."""
    script = (
        "import sys\n"
        "from flight_profiler.attach import wire\n"
        "from flight_profiler.protocol.framing import FrameError\n"
        # coverage's subprocess patch (./dev test) loads json in every child: take the module out
        # again, as in a client that never imported it (the scanner looks it up in sys.modules)
        "sys.modules.pop('json.decoder', None)\n"
        'for line in (b\'{"type":"event","data":{\\x1b]0;t\', b\'{"a":"\\x01"}\', b\'{"type":"x",}\'):\n'
        "    try:\n"
        "        wire.decode(line)\n"
        "    except FrameError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    refusals = done.stdout.splitlines()
    assert len(refusals) == 3 and all(line.startswith("invalid JSON from the agent: ") for line in refusals)


def test_a_word_without_quotes_is_what_shlex_makes_of_it() -> None:
    chars = "ab#$;|&<>(){}[]*?~=!%^-_.,:/@`\xe9\x00\x7f\x1b\u2028"
    pick = random.Random(14)
    for _ in range(20000):
        word = "".join(pick.choice(chars) for _ in range(pick.randint(1, 6)))
        if any(char.isspace() for char in word):
            continue  # never inside one word: the line is split at white space first
        assert spec._unquote(word) == shlex.split(word)[0]
    assert spec._unquote("'a b'") == "a b" and spec._unquote('a\\"') == 'a"'


def test_argparse_labels_without_catalogs(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(argparse, "_", argparse._)  # type: ignore[attr-defined]  # restored after the test
    monkeypatch.setattr(argparse, "ngettext", argparse.ngettext)  # type: ignore[attr-defined]
    monkeypatch.setattr(gettext, "_default_localedir", str(tmp_path / "missing"))
    monkeypatch.delenv("LANGUAGE", raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    before = argparse.ArgumentParser(prog="p").format_help()
    cli_main._untranslated_argparse()
    assert argparse._ is cli_main._gettext  # type: ignore[attr-defined]
    assert argparse.ArgumentParser(prog="p").format_help() == before
    assert cli_main._ngettext("one", "many", 1) == gettext.ngettext("one", "many", 1)
    assert cli_main._ngettext("one", "many", 2) == gettext.ngettext("one", "many", 2)
    # a catalog bound since is looked up again: gettext decides
    monkeypatch.setattr(gettext, "_localedirs", {"messages": str(tmp_path)})
    calls: list[str] = []

    def looked_up(message: str) -> str:
        calls.append(message)
        return message

    monkeypatch.setattr(gettext, "gettext", looked_up)
    assert cli_main._gettext("usage: ") == "usage: " and calls == ["usage: "]


@pytest.mark.parametrize("variable", ["LANGUAGE", "LANG"])
def test_argparse_asks_gettext_when_a_language_names_a_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, variable: str
) -> None:
    monkeypatch.setattr(argparse, "_", argparse._)  # type: ignore[attr-defined]
    monkeypatch.setattr(gettext, "_default_localedir", str(tmp_path / "missing"))
    monkeypatch.setenv(variable, str(tmp_path))  # an absolute path: gettext's find() looks there
    untouched = argparse._  # type: ignore[attr-defined]
    cli_main._untranslated_argparse()
    assert argparse._ is untouched  # type: ignore[attr-defined]
