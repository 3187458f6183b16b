"""GIL hooks for ``gilstat`` (client side): find take_gil/drop_gil, hook them with frida.

CPython's ``take_gil`` and ``drop_gil`` are static functions: they are listed only
in the full symbol table (``.symtab``) of libpython (or of the executable, for a
static build), never in ``.dynsym``. pyenv builds keep it; stripped builds
(Debian's, most distribution and static builds) do not, and then there is nothing
to hook. Compilers may also emit specialised clones (``take_gil.constprop.0`` on
3.8), which callers use instead of the original: every clone is hooked.

frida (an optional extra) injects its own agent into the target. The counting runs
there, in C (a frida CModule compiled in the target): per-thread takes, waits,
holds and drops, and a ring of threshold warnings, all in one block of memory that
we read every interval. No Python code runs in the target for this, so the counts
cost the target about a microsecond per GIL switch and never touch the GIL.
Why the bookkeeping needs no locks: a thread's hold and its slot are written
between ``take_gil`` returning and ``drop_gil`` being entered, i.e. while that
thread holds the GIL, so those writes never race each other; the other fields of a
slot are written only by the thread that owns it. The one shared counter, the calls now
inside the hooked functions, is lock-prefixed (threads enter take_gil without the GIL).

Why enter/leave listeners and not replacements: frida counts the calls inside each listener's
trampolines and keeps them, and its agent, until that count is 0 — a thread may wait in take_gil
for as long as another holds the GIL. A replacement's trampoline is freed at the revert, with
nothing to keep it for a thread that is running it. What neither removes: frida writes the
prologue while other threads run the target (a rare SIGSEGV of the target was seen in our tests
under heavy load; see the gilstat skill and ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from typing import Any, NamedTuple

from ...attach import elf, procfs
from ...attach.injector import freeze
from ...errors import CommandError, TargetError

INSTALL_HINT = "gilstat needs frida, an optional extra (about 140 MB): pip install 'flight_profiler[gil]'"
MAX_THREADS = 1024  # slots of per-thread counters in the target
RING = 1024  # threshold warnings kept between two reads
HEADER = 8
FIELDS = 10  # per slot: tid, takes, wait ns, max wait, holds, hold ns, max hold, drops, drop ns, hold start
WARN_FIELDS = 4  # tid, kind (1 wait, 2 hold), ns, when (CLOCK_MONOTONIC ns)
SIZE = (HEADER + MAX_THREADS * FIELDS + RING * WARN_FIELDS) * 8
INFLIGHT = 5  # header word: calls now between our enter and leave callbacks
PATCH_SPAN = 16  # bytes at a function's start frida may overwrite (its longest jump on x86-64)
FREEZE_WAIT = 2.0  # seconds to get every thread stopped outside those bytes
FREEZE_CALL_WAIT = 2.0  # seconds the threads stay stopped while frida writes
UNHOOK_WAIT = 4.0  # seconds the client waits for frida's agent to unload before it leaves it to itself
MIN_UNLOAD_WAIT = 0.5  # seconds the unload gets even when the calls inside took all of UNHOOK_WAIT
_FREE_THREADED = re.compile(r"^(lib)?python3\.\d+t\b")
_VARIANTS = ("", ".constprop.0", ".constprop.1", ".isra.0")  # compiler clones callers may use instead


class GilUnavailable(TargetError):
    """This interpreter build cannot be hooked (stripped, free-threaded)."""


class Pause(NamedTuple):
    """The target's threads stopped while frida rewrote code under them."""

    threads: int
    seconds: float  # from the first stop to the last thread let go
    late: bool  # frida's call outlasted FREEZE_CALL_WAIT and finished with the threads running


class GilFunctions(NamedTuple):
    path: str  # the file that holds them (libpython, or the executable of a static build)
    take: list[int]  # runtime addresses of take_gil and its clones
    drop: list[int]


class ThreadStats(NamedTuple):
    tid: int
    takes: int
    wait_ns: int
    wait_max_ns: int
    holds: int
    hold_ns: int
    hold_max_ns: int
    drops: int
    drop_ns: int


class GilWarning(NamedTuple):
    tid: int
    kind: str  # "wait" or "hold"
    ns: int
    at_ns: int  # CLOCK_MONOTONIC, as time.monotonic_ns() in any process on this machine


class Reading(NamedTuple):
    threads: dict[int, ThreadStats]
    warnings: list[GilWarning]
    warnings_lost: int
    threads_lost: int  # GIL switches of threads beyond MAX_THREADS, not counted
    warnings_written: int  # warnings written so far: where the next read starts


def find_functions(pid: int) -> GilFunctions:
    """Runtime addresses of take_gil/drop_gil in ``pid``; GilUnavailable saying why not."""
    procfs.check_not_exited(pid, procfs.read_status(pid))
    maps = procfs.read_maps(pid)
    path = _interpreter_file(pid, maps)
    if _FREE_THREADED.match(os.path.basename(path)):
        raise GilUnavailable(
            "gilstat is unavailable for pid %d: %s is a free-threaded build (it has no GIL)" % (pid, path)
        )
    names = ["%s%s" % (name, variant) for name in ("take_gil", "drop_gil") for variant in _VARIANTS]
    try:
        image = elf.read_symbols(procfs.target_file(pid, path), names)
    except (OSError, elf.ElfError) as exc:
        raise GilUnavailable("gilstat is unavailable for pid %d: cannot read %s: %s" % (pid, path, exc)) from None
    found = image.symbols
    if not any(name.startswith("take_gil") for name in found) or not any(n.startswith("drop_gil") for n in found):
        raise GilUnavailable(
            "gilstat is unavailable for pid %d: take_gil/drop_gil are static functions, listed only in a full "
            "symbol table (.symtab), and %s has none (a stripped build, like Debian's or most static builds); "
            "it needs an interpreter that keeps its symbols, e.g. one built by pyenv" % (pid, path)
        )
    starts = [entry.start for entry in maps if entry.path == path and entry.offset == 0]
    bias = image.load_bias(min(starts)) if starts else 0
    return GilFunctions(
        path,
        sorted(sym.value + bias for name, sym in found.items() if name.startswith("take_gil")),
        sorted(sym.value + bias for name, sym in found.items() if name.startswith("drop_gil")),
    )


def _interpreter_file(pid: int, maps: list[procfs.MapEntry]) -> str:
    """libpython when the interpreter is shared, else the executable (a static build)."""
    for entry in maps:
        if os.path.basename(entry.path).startswith("libpython") and not entry.path.endswith(" (deleted)"):
            return entry.path
    try:
        exe = os.readlink(procfs.proc_path(pid, "exe"))
    except OSError:
        raise TargetError("cannot read the executable of pid %d" % pid) from None
    return exe


def code_restored(pid: int, functions: GilFunctions) -> bool:
    """True when the first bytes of every hooked function in memory equal those in the file."""
    maps = procfs.read_maps(pid)
    with open(procfs.proc_path(pid, "mem"), "rb") as mem, open(procfs.target_file(pid, functions.path), "rb") as disk:
        for address in [*functions.take, *functions.drop]:
            entry = next((e for e in maps if e.start <= address < e.end and e.path == functions.path), None)
            if entry is None:
                return False
            mem.seek(address)
            disk.seek(address - entry.start + entry.offset)
            if mem.read(16) != disk.read(16):
                return False
    return True


def import_frida() -> Any:
    """The frida module, or a one-line error saying how to install it."""
    import importlib

    try:
        return importlib.import_module("frida")
    except ImportError:
        raise CommandError(INSTALL_HINT) from None


class Probe:
    """The hooks in one target: attach, read the counters, remove everything."""

    def __init__(self, frida: Any, pid: int, functions: GilFunctions, take_ms: float, hold_ms: float) -> None:
        self.frida = frida
        self._temp_before = _frida_temp_dirs()
        self.pid = pid
        self._code_before = [(e.start, e.end) for e in procfs.read_maps(pid) if "x" in e.perms]
        try:
            self.session = frida.attach(pid)
        except Exception as exc:  # noqa: BLE001 - frida's errors have no common base worth naming
            raise CommandError("frida cannot attach to pid %d: %s" % (pid, _one_line(exc))) from None
        self.detached_reason: str | None = None
        self.session.on("detached", self._on_detached)
        self.functions = functions
        self.hook_pause = Pause(0, 0.0, False)
        self.unhook_seconds = 0.0  # the target's threads stopped while the hooks came out
        self.script = self.session.create_script(_script(functions))
        try:
            self.script.load()
            self.script.exports_sync.configure(str(int(take_ms * 1e6)), str(int(hold_ms * 1e6)))
            self.hook_pause = self._patch("hook")[0]
        except Exception as exc:  # noqa: BLE001
            self.stop()
            raise CommandError("cannot hook the GIL functions of pid %d: %s" % (pid, _one_line(exc))) from None
        self._warnings_read = 0

    def _patch(self, name: str) -> tuple[Pause, Any]:
        """Run the script's ``hook``, ``unhook`` or ``flush`` with the target's own threads stopped.

        frida writes the functions' first bytes in place while the target runs, and frees a
        trampoline whose count of calls inside is 0 (see ``stop``); either kills a thread that
        is in those bytes or that code at that moment. So every thread but frida's own is
        stopped outside them first (attach/injector/freeze.py). The call runs on a thread of
        ours, so that a frida thread we could not tell apart and stopped cannot hold the
        target stopped: after FREEZE_CALL_WAIT the threads go again, the call finishes with
        them running, and the pause says so (``late``).
        """
        import threading

        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["value"] = getattr(self.script.exports_sync, name)()
            except Exception as exc:  # noqa: BLE001 - re-raised on the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="gilstat-" + name, daemon=True)
        began = time.monotonic()
        with freeze.frozen(self.pid, self._frida_threads, self._avoid(), FREEZE_WAIT) as count:
            worker.start()
            worker.join(FREEZE_CALL_WAIT)
        pause = Pause(count, time.monotonic() - began, worker.is_alive())
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return pause, outcome.get("value")

    def _frida_threads(self) -> set[int]:
        return set(self.script.exports_sync.cloaked(procfs.thread_ids(self.pid)))

    def _on_detached(self, reason: Any, *rest: Any) -> None:
        self.detached_reason = str(reason)

    def read(self) -> Reading:
        try:
            data = self.script.exports_sync.read()
        except Exception as exc:  # noqa: BLE001
            raise CommandError("lost the GIL probe: %s" % (self.detached_reason or _one_line(exc))) from None
        reading = parse(data, self._warnings_read)
        self._warnings_read = reading.warnings_written
        return reading

    def stop(self) -> int:
        """Unhook, let calls in flight return through the trampolines, then unload frida's agent.

        frida frees a trampoline at the end of an interceptor transaction when its count of
        calls inside is 0, but a thread counts itself in and out a few instructions inside
        the trampoline: one there at that moment runs freed code (seen: SIGSEGV at address 0
        in drop_gil's caller). So every transaction of ours runs with the target's threads
        stopped outside frida's code: the unhook (the trampolines no call is inside go), then,
        once the calls that were inside have left (bounded by UNHOOK_WAIT), a flush that frees
        the rest; frida's unload then has nothing of ours left to free. The unload runs on a
        thread of ours within the same bound: frida keeps its agent while a call is inside (a
        thread may wait in take_gil for as long as another holds the GIL). Returns 0, or how
        many calls were inside at the unhook when the agent had not unloaded in time; it then
        leaves by itself, our client's exit included.
        """
        import threading

        deadline = time.monotonic() + UNHOOK_WAIT
        inside = 0
        try:
            inside = self._unhook()
            if self._wait_calls_out(deadline):
                self.unhook_seconds += self._patch("flush")[0].seconds
        except Exception:  # noqa: BLE001, S110 - the target may be gone: unloading is all that is left
            pass
        detaching = threading.Thread(target=self._detach, name="gilstat-detach", daemon=True)
        detaching.start()
        detaching.join(max(deadline - time.monotonic(), MIN_UNLOAD_WAIT))
        _remove_own_helper_dirs(self._temp_before)
        return max(inside, 1) if detaching.is_alive() else 0

    def _unhook(self) -> int:
        """The calls inside the hooks at the unhook; unfrozen only when the threads cannot be stopped.

        Leaving the hooks in is never the safer choice: frida's unload would take them out
        unfrozen anyway.
        """
        try:
            pause, inside = self._patch("unhook")
            self.unhook_seconds += pause.seconds
        except OSError:  # FreezeError included
            inside = self.script.exports_sync.unhook()
        return int(inside)

    def _wait_calls_out(self, deadline: float) -> bool:
        """True once no call is inside our callbacks' span (polled), False at the deadline."""
        while int(self.script.exports_sync.inflight()) != 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _avoid(self) -> list[tuple[int, int]]:
        """Where no stopped thread may be: inside the bytes frida rewrites, or in code that came with frida.

        frida's code (its agent, the trampolines, our compiled callbacks) is every executable
        mapping that no executable mapping held before frida attached.
        """
        ranges = [(address + 1, address + PATCH_SPAN) for address in [*self.functions.take, *self.functions.drop]]
        for entry in procfs.read_maps(self.pid):
            if "x" in entry.perms and not any(lo <= entry.start and entry.end <= hi for lo, hi in self._code_before):
                ranges.append((entry.start, entry.end))
        return ranges

    def _detach(self) -> None:
        try:
            self.session.detach()
        except Exception:  # noqa: BLE001, S110
            pass


def _frida_temp_dirs() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "frida-*")))


def _remove_own_helper_dirs(before: set[str]) -> None:
    """frida unpacks its injection helper (about 10 MB) into a temp directory it never removes.

    The ones that appeared while we were attached are ours. The helper may still run
    from there for a minute; removing the directory of a running program is harmless
    on Linux, and frida attaches again without it (the helper stays up while we do).
    """
    import shutil

    for directory in _frida_temp_dirs() - before:
        shutil.rmtree(directory, ignore_errors=True)


def parse(data: bytes, warnings_before: int) -> Reading:
    """The counters block as read from the target."""
    words = struct.unpack("<%dQ" % (len(data) // 8), data)
    threads = {}
    for index in range(MAX_THREADS):
        slot = words[HEADER + index * FIELDS : HEADER + (index + 1) * FIELDS]
        if slot[0]:
            threads[slot[0]] = ThreadStats(*slot[:9])
    written = words[2]
    first = max(warnings_before, written - RING)
    ring = HEADER + MAX_THREADS * FIELDS
    warnings = []
    for serial in range(first, written):
        tid, kind, ns, at = words[ring + (serial % RING) * WARN_FIELDS : ring + (serial % RING + 1) * WARN_FIELDS]
        warnings.append(GilWarning(tid, "wait" if kind == 1 else "hold", ns, at))
    return Reading(threads, warnings, first - warnings_before, words[1], written)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _script(functions: GilFunctions) -> str:
    source = _C_SOURCE % {"header": HEADER, "threads": MAX_THREADS, "fields": FIELDS, "ring": RING}
    return _JS % {
        "size": SIZE,
        "source": json.dumps(source),
        "take": json.dumps([hex(address) for address in functions.take]),
        "drop": json.dumps([hex(address) for address in functions.drop]),
        "inflight": INFLIGHT * 8,
    }


# Compiled in the target by frida (TinyCC). Globals of a CModule are not writable
# there, so every counter lives in `state`, memory the script allocates.
_C_SOURCE = r"""
#include <gum/guminterceptor.h>

typedef unsigned long long u64;
struct ts { long sec; long nsec; };
extern int clock_gettime (int clock, struct ts * t);
extern u64 state[];

#define HDR %(header)d
#define MAXT %(threads)d
#define NF %(fields)d
#define RING %(ring)d
#define SLOTS (state + HDR)
#define WARN (state + HDR + MAXT * NF)
#define INFLIGHT 5

/* lock-prefixed: threads enter take_gil without the GIL, so these run concurrently */
static void count_in (void)
{
  u64 * p = state + INFLIGHT;
  __asm__ __volatile__ ("lock; incq (%%0)" : : "r" (p) : "memory");
}

static void count_out (void)
{
  u64 * p = state + INFLIGHT;
  __asm__ __volatile__ ("lock; decq (%%0)" : : "r" (p) : "memory");
}

typedef struct { u64 start; u64 * slot; } Pending;

static u64 now (void)
{
  struct ts t;
  clock_gettime (1, &t);
  return (u64) t.sec * 1000000000ULL + (u64) t.nsec;
}

/* open addressing on the thread id; called with the GIL held, so never concurrently */
static u64 * slot_for (u64 tid)
{
  int n;
  for (n = 0; n < MAXT; n++)
  {
    u64 * s = SLOTS + ((tid + n) %% MAXT) * NF;
    if (s[0] == tid)
      return s;
    if (s[0] == 0)
    {
      s[0] = tid;
      state[0]++;
      return s;
    }
  }
  state[1]++;
  return 0;
}

static void warn (u64 tid, u64 kind, u64 ns, u64 at)
{
  u64 * w = WARN + (state[2] %% RING) * 4;
  w[0] = tid;
  w[1] = kind;
  w[2] = ns;
  w[3] = at;
  state[2]++;
}

void take_enter (GumInvocationContext * ic)
{
  Pending * p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  count_in ();
  p->start = now ();
}

void take_leave (GumInvocationContext * ic)
{
  u64 t = now ();
  Pending * p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  u64 tid = gum_invocation_context_get_thread_id (ic);
  u64 * s;
  u64 wait;
  count_out ();
  if (p->start == 0)
    return;
  s = slot_for (tid);
  if (s == 0)
    return;
  wait = t - p->start;
  p->start = 0;
  s[1]++;
  s[2] += wait;
  if (wait > s[3])
    s[3] = wait;
  s[9] = t;
  if (state[3] != 0 && wait >= state[3])
    warn (tid, 1, wait, t);
}

void drop_enter (GumInvocationContext * ic)
{
  u64 t = now ();
  Pending * p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  u64 * s = slot_for (gum_invocation_context_get_thread_id (ic));
  u64 hold;
  count_in ();
  p->start = t;
  p->slot = s;
  if (s == 0 || s[9] == 0)
    return;
  hold = t - s[9];
  s[9] = 0;
  s[4]++;
  s[5] += hold;
  if (hold > s[6])
    s[6] = hold;
  if (state[4] != 0 && hold >= state[4])
    warn (s[0], 2, hold, t);
}

void drop_leave (GumInvocationContext * ic)
{
  u64 t = now ();
  Pending * p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  u64 * s = p->slot;
  count_out ();
  if (s == 0 || p->start == 0)
    return;
  s[7]++;
  s[8] += t - p->start;
  p->start = 0;
}
"""

_JS = r"""
const SIZE = %(size)d;
const state = Memory.alloc(SIZE);
state.writeByteArray(new Uint8Array(SIZE).buffer);
const clock = (typeof Module.getGlobalExportByName === 'function')
  ? Module.getGlobalExportByName('clock_gettime')
  : Module.getExportByName(null, 'clock_gettime');
const cm = new CModule(%(source)s, { state: state, clock_gettime: clock });
const listeners = [];
rpc.exports = {
  read() { return state.readByteArray(SIZE); },
  configure(takeNs, holdNs) {
    state.add(24).writeU64(uint64(takeNs));
    state.add(32).writeU64(uint64(holdNs));
  },
  cloaked(tids) { return tids.filter((tid) => Cloak.hasThread(tid)); },  // frida's own threads
  hook() {
    for (const a of %(take)s)
      listeners.push(Interceptor.attach(ptr(a), { onEnter: cm.take_enter, onLeave: cm.take_leave }));
    for (const a of %(drop)s)
      listeners.push(Interceptor.attach(ptr(a), { onEnter: cm.drop_enter, onLeave: cm.drop_leave }));
    Interceptor.flush();
  },
  unhook() {
    const inside = state.add(%(inflight)d).readU64().toNumber();  // calls that will leave after the detach
    for (const l of listeners) l.detach();
    listeners.length = 0;
    Interceptor.flush();
    return inside;
  },
  inflight() { return state.add(%(inflight)d).readU64().toNumber(); },
  flush() { Interceptor.flush(); },  // frees the trampolines the calls inside at the unhook kept
};
"""
