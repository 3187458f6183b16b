"""services/describe.py: what every command shows for an error or an object that fights back."""

from __future__ import annotations

import json
import threading
from typing import Any, List

import pytest

from flight_profiler.services.describe import MESSAGE_LIMIT, describe_error, error_message, safe_repr, type_name


class HostileMeta(type):
    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("no module for you")


class Hostile(metaclass=HostileMeta):
    def __repr__(self) -> str:
        raise ValueError("no repr")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_type_names_plain_qualified_and_hostile() -> None:
    assert type_name(int) == "int"
    assert type_name(json.JSONDecodeError) == "json.decoder.JSONDecodeError"
    assert type_name(Hostile) == "%s.Hostile" % __name__  # type's own getter: the property never runs
    not_a_class: Any = object()
    assert type_name(not_a_class).startswith("<type at 0x")
    lock_type: Any = type(__import__("_thread").allocate_lock())
    assert type_name(lock_type, ("builtins", "_thread")) == "lock"


def test_repr_is_cut_or_replaced() -> None:
    assert safe_repr("x" * 1000) == repr("x" * 1000)[:200]
    assert safe_repr(Hostile()) == "<Hostile>"


def test_error_text_is_one_bounded_line() -> None:
    assert describe_error(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"
    assert describe_error(ValueError()) == "ValueError"
    assert describe_error(Unprintable()) == "Unprintable"
    assert error_message(Unprintable()) is None
    assert describe_error(json.JSONDecodeError("bad", "doc", 0), qualified=True).startswith(
        "json.decoder.JSONDecodeError: bad"
    )
    long = describe_error(ValueError("a" * 10 + "b" * 10000 + "c" * 10))
    assert len(long) < MESSAGE_LIMIT + 40 and long.startswith("ValueError: aaa") and long.endswith("ccc")
    assert " ... " in long
    assert len(describe_error(ValueError("x" * 1000), limit=500)) < 540


class Endless(Exception):
    def __str__(self) -> str:
        while True:
            pass


def test_an_errors_str_that_never_returns_is_stopped_in_an_agent_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception class's ``__str__`` is the program's code: describing the error ran it with no budget."""
    from flight_profiler.services import usercode
    from flight_profiler.services.context import AGENT_THREAD_IDS

    monkeypatch.setattr(usercode, "CAPTURE_BUDGET_MS", 100.0)
    out: List[str] = []

    def agent() -> None:
        AGENT_THREAD_IDS.add(threading.get_ident())
        try:
            out.append(describe_error(Endless()))
        finally:
            AGENT_THREAD_IDS.discard(threading.get_ident())

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "describe_error ran the __str__ for good"
    assert out == ["Endless"]
