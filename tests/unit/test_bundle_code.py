"""The start set's code in the bundle (attach/bundle.py): from our bytecode cache only where it is
current and says where it came from, compiled otherwise; always what compiling the source gives."""

from __future__ import annotations

import marshal
import os
import py_compile
from importlib.util import cache_from_source

import pytest

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


def test_code_compiled_where_our_bytecode_cache_is_missing_is_kept_for_the_next_client(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install or a zipapp has no bytecode cache of the agent's modules (the client never
    imports them): each run of the client compiled the start set (25-30 ms). Compiled once, it is kept
    (attach/codecache) and the next client reads it, until a source changes."""
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.join(str(tmp_path), "cache"))
    modules = {}
    for name, (_, source, is_package) in bundle._collected().items():  # the same sources, without a cache
        path = os.path.join(str(tmp_path), name + ".py")
        with open(path, "w") as fh:
            fh.write(source)
        modules[name] = (path, source, is_package)
    first = bundle._precompiled(modules)
    assert set(first) == set(bundle._wanted(modules))
    kept = os.listdir(os.path.join(str(tmp_path), "cache", "flight_profiler", "bytecode"))
    assert len(kept) == 1

    def no_compile(filename: str, source: str) -> bytes:
        raise AssertionError("compiled %s again" % filename)

    monkeypatch.setattr(bundle, "_marshalled", no_compile)
    assert bundle._precompiled(modules) == first  # read back, not compiled

    name = bundle._wanted(modules)[-1]
    path, source, is_package = modules[name]
    modules[name] = (path, source + "\nEDITED = 1\n", is_package)
    with pytest.raises(AssertionError, match=r"compiled .* again"):  # another source: another entry
        bundle._precompiled(modules)


def test_the_in_target_sources_are_ascii() -> None:
    """The bootstrap decodes the whole bundle (~1 MB) in the target with the GIL held: all ASCII, that
    is a copy (0.05 ms); one non-ASCII character anywhere put the rest through the slow path (1.0-1.3 ms
    more, on every attach). Say "us", not the micro sign, in the agent's comments."""
    for name, (filename, source, _) in bundle.collect().items():
        odd = sorted({ch for ch in source if ord(ch) > 127})
        assert not odd, "%s (%s) holds %s" % (filename, name, ", ".join("U+%04X" % ord(ch) for ch in odd))
    assert bundle.data(True).isascii()
