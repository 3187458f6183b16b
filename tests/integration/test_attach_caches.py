"""What a group attach does once instead of per target: ELF symbols per file identity, gadget
hints checked against the target, the sweep of stale files per directory.

A group attach looks up the same interpreter in every worker; the caches make that one parse
and one scan. They must never serve a stale answer: a file replaced at the same path (a new
inode), or rewritten in place with its mtime put back, is parsed afresh; a gadget hint is
only used once the target's own bytes at that address are the gadget.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Iterator, List

import pytest

from flight_profiler.attach import attacher, elf, procfs
from flight_profiler.attach.injector import arch as arch_mod
from flight_profiler.attach.injector import symbols
from flight_profiler.attach.injector import sys as injector_sys
from flight_profiler.attach.target import inspect
from interpreters import find_interpreters
from support import wait_until

INTERPRETERS = find_interpreters()
IDS = [i for i, _ in INTERPRETERS]
NAMES = ("PyRun_SimpleString", "Py_AddPendingCall")


def _api_file() -> str:
    """The file exporting the C-API in this very process (libpython or a static interpreter)."""
    pid = os.getpid()
    for path in symbols._candidate_files(pid, procfs.read_maps(pid)):
        if "PyRun_SimpleString" in elf.read_symbols(path, NAMES).symbols:
            return path
    pytest.skip("no file of this interpreter exports PyRun_SimpleString")


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _renamed(data: bytes) -> bytes:
    """The same file with the symbol's name changed in every string table (same size)."""
    changed = data.replace(b"PyRun_SimpleString\0", b"PyRun_SimpleStrinX\0")
    assert changed != data and len(changed) == len(data)
    return changed


@pytest.fixture
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fp-h31-elf-") as path:
        yield path


def test_cache_is_keyed_by_the_file_not_its_name(workdir: str) -> None:
    elf.clear_cache()
    path = os.path.join(workdir, "libpy.so")
    shutil.copyfile(_api_file(), path)
    other = os.path.join(workdir, "another-name.so")
    os.link(path, other)  # one file, two names: like one interpreter seen through each worker's map_files
    first = elf.read_symbols(path, NAMES)
    again = elf.read_symbols(other, NAMES)
    assert again.symbols is first.symbols  # served from the cache, not parsed again
    assert again.path == other


def test_replaced_file_at_the_same_path_is_not_served_from_the_cache(workdir: str) -> None:
    elf.clear_cache()
    original = _read(_api_file())
    path = os.path.join(workdir, "libpy.so")
    with open(path, "wb") as fh:
        fh.write(original)
    assert "PyRun_SimpleString" in elf.read_symbols(path, NAMES).symbols
    # replaced by rename (what package managers do): a new inode at the same name
    replacement = path + ".new"
    with open(replacement, "wb") as fh:
        fh.write(_renamed(original))
    os.rename(replacement, path)
    assert "PyRun_SimpleString" not in elf.read_symbols(path, NAMES).symbols
    # rewritten in place, same inode and size, mtime put back: possibly even the same ctime tick
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(original)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert "PyRun_SimpleString" in elf.read_symbols(path, NAMES).symbols


def test_rewrite_the_identity_does_not_show_is_caught_by_the_bytes(
    workdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewrite within one tick of the file system's clock keeps even the ctime: the proofs catch it."""
    elf.clear_cache()
    monkeypatch.setattr(elf, "file_identity", lambda st: (st.st_dev, st.st_ino))  # as if nothing else moved
    original = _read(_api_file())
    path = os.path.join(workdir, "libpy.so")
    with open(path, "wb") as fh:
        fh.write(original)
    assert "PyRun_SimpleString" in elf.read_symbols(path, NAMES).symbols
    with open(path, "r+b") as fh:
        fh.write(_renamed(original))
    assert "PyRun_SimpleString" not in elf.read_symbols(path, NAMES).symbols
    assert "Py_AddPendingCall" in elf.read_symbols(path, NAMES).symbols


def test_cache_is_bounded(workdir: str) -> None:
    elf.clear_cache()
    source = _api_file()
    for number in range(elf._CACHE_SIZE + 5):
        path = os.path.join(workdir, "copy%d.so" % number)
        shutil.copyfile(source, path)
        elf.read_symbols(path, NAMES)
    assert len(elf._cache) == elf._CACHE_SIZE


@pytest.fixture
def sleepers(request: pytest.FixtureRequest) -> Iterator[List[int]]:
    python = request.param
    procs = [subprocess.Popen([python, "-c", "import time\nwhile True: time.sleep(1)"]) for _ in range(2)]
    try:
        for proc in procs:  # mapped its interpreter and libc: the maps name python and libc
            assert wait_until(lambda p=proc: b"libc" in _read("/proc/%d/maps" % p.pid), 15.0)
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sleepers", [p for _, p in INTERPRETERS], ids=IDS, indirect=True)
def test_gadget_hints_are_checked_against_the_target(sleepers: List[int], monkeypatch: pytest.MonkeyPatch) -> None:
    arch = arch_mod.current()
    first, second = sleepers
    with symbols._hints_lock:
        symbols._hints.clear()
    scans: List[int] = []
    real_read_code = symbols._read_code

    def counting(pid: int, entry: procfs.MapEntry) -> bytes | None:
        scans.append(pid)
        return real_read_code(pid, entry)

    monkeypatch.setattr(symbols, "_read_code", counting)

    def find(pid: int) -> symbols.Gadgets:
        return symbols.find_gadgets(pid, procfs.read_maps(pid), arch.SYSCALL_RET, arch.SIGRETURN)

    def executes_gadgets(pid: int, gadgets: symbols.Gadgets) -> bool:
        ret = injector_sys.try_read(pid, gadgets.syscall_ret, len(arch.SYSCALL_RET)) == arch.SYSCALL_RET
        sig = any(injector_sys.try_read(pid, gadgets.sigreturn, len(p)) == p for p in arch.SIGRETURN)
        return ret and sig

    assert executes_gadgets(first, find(first)) and scans
    if not symbols._hints:
        pytest.skip("no /proc/<pid>/map_files here (CAP_SYS_ADMIN): nothing is cached")
    scans.clear()
    assert executes_gadgets(second, find(second))
    assert scans == []  # the other process of the same interpreter: only the hinted bytes were read
    with symbols._hints_lock:  # a hint that is wrong for this target (a rebuilt file, patched code)
        for hints in symbols._hints.values():
            for name in hints:
                hints[name] += 1
    assert executes_gadgets(second, find(second))
    assert scans  # the wrong hint was not believed: the mapping was scanned again


@pytest.mark.parametrize("sleepers", [INTERPRETERS[0][1]] if INTERPRETERS else [], indirect=True)
def test_stale_sweep_once_per_directory(sleepers: List[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A group attach sweeps the shared directory once; another user's directory is swept on its own."""
    monkeypatch.setattr(attacher, "_swept", {})
    first, second = (inspect(pid) for pid in sleepers)
    assert attacher._first_sweep(first)
    assert not attacher._first_sweep(second)  # same user, mount namespace and root: the same directory
    other_user = second._replace(uid=second.uid + 4242)
    assert attacher._first_sweep(other_user)
    monkeypatch.setattr(attacher, "STALE_SWEEP_EVERY", 0.0)
    assert attacher._first_sweep(second)  # later on, a new sweep
