"""Where things are in the target: the Python C-API, our two libc gadgets, a free address.

Read-only: /proc/pid/maps, the ELF files the target maps (``attach.elf``) and, for
the gadgets, the target's own executable memory (what will actually execute).
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections import OrderedDict

from flight_profiler.attach import elf, procfs
from flight_profiler.errors import InjectionError, TargetError

from . import sys as _sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple
else:
    from flight_profiler.named import NamedTuple

PAGE = 4096
_API_NAMES = (
    "Py_AddPendingCall",
    "PyRun_SimpleString",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "_PyRuntime",
)
# Exported only by free-threaded builds (Py_DECREF of an object another thread owns): the file's name
# says so ("python3.14t", attach/target) unless the build was renamed or copied, as into a container's
# /usr/local/bin/python; then only its exports do. Looked up with the API, in the same pass.
_FREE_THREADED = ("_Py_DecRefShared", "_Py_MergeZeroLocalRefcount")
_LOOKED_UP = _API_NAMES + _FREE_THREADED
_SCAN_LIMIT = 8 << 20  # bytes of one executable mapping we read looking for a gadget
_LOW = 0x10000  # stay clear of mmap_min_addr and the zero page
_USER_TOP = 0x7FFF_FFFF_F000
_GUARD = 16 * PAGE  # free space kept on both sides of our page: no merge, room for neighbours


class PythonApi(NamedTuple):
    """Runtime addresses of the C-API entry points in one target process."""

    path: str  # file (as the target sees it) that exports the C-API
    add_pending_call: int
    run_simple_string: int
    gilstate_ensure: int
    gilstate_release: int
    runtime_range: Tuple[int, int]  # [start, end) of _PyRuntime; holds the main GIL


class Gadgets(NamedTuple):
    syscall_ret: int  # ``syscall; ret``
    sigreturn: int  # ``mov rax, 15; syscall`` (glibc's __restore_rt)


def _candidate_files(pid: int, maps: Sequence[procfs.MapEntry]) -> List[str]:
    """Mapped files that may export the C-API, most likely first.

    libpython (shared builds), then the executable (static builds such as Debian's
    python3.11 or an embedding application), then anything else named *python*.
    Extension modules (name contains "cpython-") only import the API.
    """
    try:
        exe = os.readlink(procfs.proc_path(pid, "exe"))
    except OSError:
        exe = ""
    ranked: Dict[str, int] = {}
    for entry in maps:
        path = entry.path
        if not path.startswith("/") or path in ranked:
            continue
        base = os.path.basename(path)
        if base.startswith("libpython"):
            ranked[path] = 0
        elif path == exe:
            ranked[path] = 1
        elif "python" in base and "cpython-" not in base:
            ranked[path] = 2
    return sorted(ranked, key=lambda p: ranked[p])


def _host_path(pid: int, path: str, maps: Sequence[procfs.MapEntry]) -> str:
    """A name we can open for the file mapped at ``path`` in the target.

    ``/proc/<pid>/map_files`` opens the mapped file itself: no path is resolved, so a
    chrooted target (whose map paths are relative to our root, not its own), a file
    replaced on disk since, or a link planted in a container's root cannot mislead
    us. It needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE); without it, the path as
    the target sees it, through its root.
    """
    for entry in maps:
        if entry.path == path and entry.offset == 0:
            candidate = procfs.proc_path(pid, "map_files", f"{entry.start:x}-{entry.end:x}")
            try:
                os.close(os.open(candidate, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                break
            return candidate
    return procfs.target_file(pid, path.replace(" (deleted)", ""))


def find_python_api(pid: int, maps: Optional[Sequence[procfs.MapEntry]] = None) -> PythonApi:
    """Locate the C-API entry points in ``pid`` from the ELF symbols of its files.

    Raises TargetError when no mapped file exports them (not a CPython process).
    """
    if maps is None:
        maps = procfs.read_maps(pid)
    for path in _candidate_files(pid, maps):
        host = _host_path(pid, path, maps)
        try:
            image = elf.read_symbols(host, _LOOKED_UP)
        except (OSError, elf.ElfError):
            continue
        syms = image.symbols
        if "PyRun_SimpleString" not in syms:
            continue
        _refuse_free_threaded(pid, path, syms)
        missing = [n for n in _API_NAMES if n not in syms]
        if missing:
            raise TargetError(
                f"pid {pid}: {path} exports PyRun_SimpleString but not {', '.join(missing)}; unsupported Python build"
            )
        starts = [e.start for e in maps if e.path == path and e.offset == 0]
        if not starts:
            continue
        bias = image.load_bias(min(starts))
        _check_code(pid, path, host, image, bias)
        rt = syms["_PyRuntime"]
        rt_start = rt.value + bias
        rt_end = rt_start + rt.size if rt.size else _mapping_end(maps, rt_start)
        return PythonApi(
            path=path,
            add_pending_call=syms["Py_AddPendingCall"].value + bias,
            run_simple_string=syms["PyRun_SimpleString"].value + bias,
            gilstate_ensure=syms["PyGILState_Ensure"].value + bias,
            gilstate_release=syms["PyGILState_Release"].value + bias,
            runtime_range=(rt_start, rt_end),
        )
    raise TargetError(
        f"pid {pid} ({procfs.process_name(pid)}) does not look like a CPython process: none of its mapped files "
        "exports the Python C-API (PyRun_SimpleString)"
    )


def refuse_free_threaded(pid: int) -> None:
    """Raise TargetError when the file that exports ``pid``'s C-API is a free-threaded build; read-only, and
    silent where the files cannot be read (the attach then says why when it needs them)."""
    maps = procfs.read_maps(pid)
    for path in _candidate_files(pid, maps):
        try:
            syms = elf.read_symbols(_host_path(pid, path, maps), _LOOKED_UP).symbols
        except (OSError, elf.ElfError):
            continue
        if "PyRun_SimpleString" in syms:
            _refuse_free_threaded(pid, path, syms)
            return


def _refuse_free_threaded(pid: int, path: str, syms: Dict[str, elf.ElfSymbol]) -> None:
    found = [name for name in _FREE_THREADED if name in syms]
    if found:
        raise TargetError(
            f"pid {pid} runs a free-threaded build of Python ({os.path.basename(path)} exports {found[0]}); "
            "attaching to free-threaded builds is not supported yet (docs/platforms.md); 'stack' still works "
            "from outside"
        )


_CODE_CHECKED = ("PyRun_SimpleString", "Py_AddPendingCall", "PyGILState_Ensure", "PyGILState_Release")
_CODE_BYTES = 16  # of each function: what the thread will execute, compared with the file's


def _check_code(pid: int, path: str, host: str, image: elf.ElfImage, bias: int) -> None:
    """Refuse unless the functions the injection calls hold, in the target's memory, the code the file
    we read their addresses from has there.

    Without CAP_SYS_ADMIN ``/proc/<pid>/map_files`` is closed to us and the file is opened by its path:
    once an upgrade or a redeploy replaced it on disk (a rename: the mapped one is "(deleted)"), the
    path gives another build's addresses, and a thread sent there crashed the target (SIGSEGV). The
    comparison holds in containers too, where overlayfs makes the inodes in maps and stat() differ.
    """
    try:
        fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetError(f"pid {pid}: cannot read {path} again to check its code: {exc.strerror}") from None
    try:
        for name in _CODE_CHECKED:
            symbol = image.symbols[name]
            size = min(_CODE_BYTES, symbol.size or _CODE_BYTES)
            offset = image.file_offset(symbol.value)
            on_disk = os.pread(fd, size, offset) if offset is not None else b""
            try:
                in_memory = _sys.try_read(pid, symbol.value + bias, size)
            except OSError as exc:
                raise TargetError(f"pid {pid}: cannot read its memory: {exc.strerror}") from None
            if len(on_disk) != size or in_memory != on_disk:
                raise TargetError(
                    f"pid {pid}: the code of {name} in its memory is not what {path.replace(' (deleted)', '')} "
                    "holds on disk: the file was replaced since the process started (an upgrade, a redeploy?); "
                    "refused, since calling it by that file's addresses would crash the process. As root, the "
                    "mapped file itself is read (/proc/PID/map_files)"
                )
    finally:
        os.close(fd)


def _mapping_end(maps: Sequence[procfs.MapEntry], addr: int) -> int:
    """End of the mapping containing ``addr``: a conservative _PyRuntime bound."""
    for entry in maps:
        if entry.start <= addr < entry.end:
            return entry.end
    return addr + PAGE


def find_gadgets(pid: int, maps: Sequence[procfs.MapEntry], syscall_ret: bytes, sigreturn: Sequence[bytes]) -> Gadgets:
    """Addresses of the two instruction sequences the kill-safe stages return through.

    Any occurrence of the bytes executes as those instructions when jumped to, so the
    first hit is enough; libc comes first (its __restore_rt is the canonical sigreturn),
    then the dynamic loader and the other executable file mappings.

    Where a file's earlier scan left a hint (``_hints``), only the few bytes there are read
    back from this target and compared: what decides is always what this process would execute.
    """
    code = [e for e in maps if "x" in e.perms and e.path.startswith("/")]
    code.sort(key=lambda e: (_rank(e.path), e.start))
    patterns = {"syscall_ret": (syscall_ret,), "sigreturn": tuple(sigreturn)}
    found: Dict[str, int] = {}
    for entry in code:
        identity = _mapped_identity(pid, entry)
        _use_hints(pid, entry, identity, patterns, found)
        if len(found) < 2:
            _scan(pid, entry, identity, patterns, found)
        if len(found) == 2:
            return Gadgets(found["syscall_ret"], found["sigreturn"])
    raise InjectionError(
        f"pid {pid}: no 'syscall; ret' and sigreturn instruction sequences found in its executable mappings "
        "(not a glibc/musl process?)"
    )


# file identity (elf.file_identity, read through /proc/<pid>/map_files) -> gadget -> file offset where an
# earlier scan found it. Only a hint: the bytes are read back from the target before one is used.
_HINTS_SIZE = 32
_hints: OrderedDict[Tuple[int, ...], Dict[str, int]] = OrderedDict()
_hints_lock = threading.Lock()


def _mapped_identity(pid: int, entry: procfs.MapEntry) -> Optional[Tuple[int, ...]]:
    """The mapped file's identity through its map_files link (the file itself, not a path); None without it."""
    name = procfs.proc_path(pid, "map_files", f"{entry.start:x}-{entry.end:x}")
    try:
        return elf.file_identity(os.stat(name))
    except OSError:
        return None  # no CAP_SYS_ADMIN / CAP_CHECKPOINT_RESTORE: scan every time, never key by path


def _use_hints(
    pid: int,
    entry: procfs.MapEntry,
    identity: Optional[Tuple[int, ...]],
    patterns: Dict[str, Tuple[bytes, ...]],
    found: Dict[str, int],
) -> None:
    if identity is None:
        return
    with _hints_lock:
        hints = dict(_hints.get(identity) or {})
    for name, offset in hints.items():
        if name in found or not entry.offset <= offset < entry.offset + (entry.end - entry.start):
            continue
        address = entry.start + offset - entry.offset
        for pattern in patterns[name]:
            if _sys.try_read(pid, address, len(pattern)) == pattern:
                found[name] = address
                break


def _scan(
    pid: int,
    entry: procfs.MapEntry,
    identity: Optional[Tuple[int, ...]],
    patterns: Dict[str, Tuple[bytes, ...]],
    found: Dict[str, int],
) -> None:
    data = _read_code(pid, entry)
    if data is None:
        return
    for name, candidates in patterns.items():
        if name in found:
            continue
        for pattern in candidates:
            pos = data.find(pattern)
            if pos >= 0:
                found[name] = entry.start + pos
                if identity is not None:
                    _remember(identity, name, entry.offset + pos)
                break


def _remember(identity: Tuple[int, ...], name: str, offset: int) -> None:
    with _hints_lock:
        _hints.setdefault(identity, {})[name] = offset
        _hints.move_to_end(identity)
        while len(_hints) > _HINTS_SIZE:
            _hints.popitem(last=False)


def _rank(path: str) -> int:
    base = os.path.basename(path)
    if base.startswith(("libc.so", "libc-", "ld-musl")):
        return 0
    if base.startswith("ld-linux"):
        return 1
    return 2


def _read_code(pid: int, entry: procfs.MapEntry) -> Optional[bytes]:
    try:
        return _sys.read_memory(pid, entry.start, min(entry.end - entry.start, _SCAN_LIMIT))
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.ESRCH):
            raise procfs.permission_error(pid, "read the memory of", exc.errno) from None
        return None


def pick_page_address(maps: Sequence[procfs.MapEntry], size: int, rng: Optional[random.Random] = None) -> int:
    """A page-aligned address with ``size`` bytes free and a guard gap on both sides.

    Random inside the largest free gap of the address space (below the stack), so a
    concurrent mmap of the target's own is unlikely to want the same place; the
    injected mmap uses MAP_FIXED_NOREPLACE, so a collision fails instead of clobbering.
    """
    spans = sorted((e.start, e.end) for e in maps if e.end <= _USER_TOP)
    best: Tuple[int, int] = (0, 0)
    prev_end = _LOW
    for start, end in spans:
        if start - prev_end > best[1] - best[0]:
            best = (prev_end, start)
        prev_end = max(prev_end, end)
    lo, hi = best[0] + _GUARD, best[1] - _GUARD - size
    if hi <= lo:
        raise InjectionError("no free address range in the target for the injection page")
    rng = rng or random.SystemRandom()
    return (lo + rng.randrange(0, (hi - lo) // PAGE) * PAGE + PAGE - 1) // PAGE * PAGE


def find_mapping(maps: Sequence[procfs.MapEntry], addr: int) -> Optional[procfs.MapEntry]:
    for entry in maps:
        if entry.start <= addr < entry.end:
            return entry
    return None
