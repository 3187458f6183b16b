"""The start set's code in the bundle (attach/bundle.py): from our bytecode cache only where it is
current and says where it came from, compiled otherwise; always what compiling the source gives."""

from __future__ import annotations

import marshal
import os
import py_compile
from importlib.util import cache_from_source

from flight_profiler.attach import bundle


def _value(data: bytes) -> object:
    namespace: dict[str, object] = {}
    exec(marshal.loads(data), namespace)
    return namespace["VALUE"]


def test_a_current_cache_is_used_and_a_stale_or_misplaced_one_is_not(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "module.py")
    with open(path, "w") as fh:
        fh.write("VALUE = 1\n")
    py_compile.compile(path, doraise=True)
    with open(cache_from_source(path), "rb") as fh:
        cached = fh.read()[16:]
    assert bundle._marshalled(path, "VALUE = 1\n") == cached  # the cache, as it is

    with open(path, "w") as fh:  # edited since: another size (and time), the cache is stale
        fh.write("VALUE = 222\n")
    assert _value(bundle._marshalled(path, "VALUE = 222\n")) == 222

    py_compile.compile(path, cfile=cache_from_source(path), dfile="elsewhere.py", doraise=True)
    data = bundle._marshalled(path, "VALUE = 222\n")  # current, but its code names another file
    assert marshal.loads(data).co_filename == path and _value(data) == 222


def test_the_bundle_holds_code_for_the_start_set_only_when_asked() -> None:
    plain, with_code = bundle.text().split("\0"), bundle.text(with_code=True).split("\0")
    assert plain[0] == "" and not any(plain[at + 4] for at in range(1, len(plain), 5))
    coded = {with_code[at]: with_code[at + 4] for at in range(1, len(with_code), 5) if with_code[at + 4]}
    assert with_code[0] and "_flight_profiler.agent.loader" in coded and "_flight_profiler.agent.server" in coded
    assert "_flight_profiler.services.capture" in coded  # most first commands load it
    assert "_flight_profiler.services.capture_repr" not in coded  # loaded when a command needs it: compiled there
    assert bundle.size(True) == len(bundle.text(True).encode("utf-8"))
