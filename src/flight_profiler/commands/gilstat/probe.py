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
slot are written only by the thread that owns it. The one shared table, of the calls now
inside the hooked functions, has its entries claimed with a locked compare-exchange (threads
enter take_gil without the GIL).

Why enter/leave listeners and not replacements: frida counts the calls inside each listener's
trampolines and keeps them, and its agent, until that count is 0 — a thread may wait in take_gil
for as long as another holds the GIL. A replacement's trampoline is freed at the revert, with
nothing to keep it for a thread that is running it. frida writes the prologues and frees the
trampolines in live code: every such rewrite of ours runs with the target's threads stopped
(``Probe._patch``, attach/injector/freeze.py).
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
from ...attach.injector import sys as ptrace_sys
from ...errors import CommandError, TargetError

INSTALL_HINT = "gilstat needs frida, an optional extra (about 140 MB): pip install 'flight_profiler[gil]'"
MAX_THREADS = 1024  # slots of per-thread counters in the target
RING = 1024  # threshold warnings kept between two reads
HEADER = 8
FIELDS = 10  # per slot: tid, takes, wait ns, max wait, holds, hold ns, max hold, drops, drop ns, hold start
WARN_FIELDS = 4  # tid, kind (1 wait, 2 hold), ns, when (CLOCK_MONOTONIC ns)
OPEN_FIELDS = 2  # per thread inside a hooked call: tid, the address of the call's return address
OPEN_AT = HEADER + MAX_THREADS * FIELDS + RING * WARN_FIELDS  # word where that table starts
SIZE = (OPEN_AT + MAX_THREADS * OPEN_FIELDS) * 8
PATCH_SPAN = 16  # bytes at a function's start frida may overwrite (its longest jump on x86-64)
MAIN_WAIT = 2.0  # seconds to wait for the main thread to block in a system call before frida's injector stops it
FREEZE_WAIT = 2.0  # seconds to get every thread stopped outside those bytes
FREEZE_CALL_WAIT = 2.0  # seconds the threads stay stopped while frida writes
UNHOOK_WAIT = 4.0  # seconds the client waits for frida's agent to unload before it leaves it to itself
FLUSH_RETRY = 0.05  # seconds between two looks for calls still inside frida's trampolines
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


class OpenCall(NamedTuple):
    """A call inside a hooked function when the hooks came out."""

    tid: int
    slot: int  # where its return address is: frida's leave trampoline's address until it returns


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


def check_frida() -> None:
    """A one-line error saying how to install frida when it is missing (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("frida") is None:
        raise CommandError(INSTALL_HINT)


class Probe:
    """The hooks in one target: attach, read the counters, remove everything."""

    def __init__(self, frida: Any, pid: int, functions: GilFunctions, take_ms: float, hold_ms: float) -> None:
        self.frida = frida
        self.pid = pid
        self._code_before = [(e.start, e.end) for e in procfs.read_maps(pid) if "x" in e.perms]
        _wait_main_thread_blocked(pid)
        try:
            self.session = frida.attach(pid)
        except Exception as exc:  # noqa: BLE001 - frida's errors have no common base worth naming
            raise CommandError("frida cannot attach to pid %d: %s" % (pid, _one_line(exc))) from None
        # frida's agent and its loader's memory, which its helper frees (not the libraries it loaded)
        self._injected = frida_own(procfs.read_maps(pid), self._code_before)
        self.detached_reason: str | None = None
        self.session.on("detached", self._on_detached)
        self.functions = functions
        self.hook_pause = Pause(0, 0.0, False)
        self.unhook_seconds = 0.0  # the target's threads stopped while the hooks came out
        self.unpaused = 0  # frida's rewrites that ran, in whole or part, with the target's threads running
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
        them running, and the pause says so (``late``). Returns the pause and what the call
        returned.
        """
        import threading

        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["value"] = getattr(self.script.exports_sync, name)()
            except Exception as exc:  # noqa: BLE001 - re-raised on the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="gilstat-" + name, daemon=True)
        avoid = self._prologues() + self._frida_code()
        with freeze.frozen(self.pid, self._frida_threads, avoid, FREEZE_WAIT) as frozen:
            worker.start()
            worker.join(FREEZE_CALL_WAIT)
        pause = Pause(len(frozen.threads), frozen.seconds, worker.is_alive())
        self.unpaused += pause.late
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return pause, outcome.get("value")

    def _frida_threads(self) -> set[int]:
        return set(self.script.exports_sync.cloaked(procfs.thread_ids(self.pid)))

    def _on_detached(self, reason: Any, *rest: Any) -> None:
        self.detached_reason = str(reason)

    def read(self) -> Reading:
        reading = parse(self.read_raw(), self._warnings_read)
        self._warnings_read = reading.warnings_written
        return reading

    def read_raw(self) -> bytes:
        """The counters block as it is in the target now (``parse`` reads it)."""
        try:
            return bytes(self.script.exports_sync.read())
        except Exception as exc:  # noqa: BLE001
            raise CommandError("lost the GIL probe: %s" % (self.detached_reason or _one_line(exc))) from None

    def stop(self) -> int:
        """Unhook, let the calls inside return through the trampolines, free them, unload frida's agent.

        frida frees a trampoline at the end of an interceptor transaction when its count of
        calls inside is 0, but a thread counts itself in and out a few instructions inside
        the trampoline: one there at that moment runs freed code (seen: SIGSEGV at address 0
        in drop_gil's caller). So every transaction of ours runs with the target's threads
        stopped outside frida's code: the unhook (the trampolines no call is inside go), then,
        once the calls that were inside have left (bounded by UNHOOK_WAIT), a flush that frees
        the rest; frida's unload then has nothing of ours left to free. The unload runs on a
        thread of ours within the same bound: frida keeps its agent while a call is inside (a
        thread may wait in take_gil for as long as another holds the GIL). Returns 0, or how
        many calls were still inside when the agent had not unloaded in time; it then leaves
        by itself, our client's exit included.
        """
        import threading

        deadline = time.monotonic() + UNHOOK_WAIT
        open_calls: list[OpenCall] = []
        try:
            open_calls = self._unhook()
            open_calls = self._flush_once_out(open_calls, deadline)
        except Exception:  # noqa: BLE001, S110 - the target may be gone: unloading is all that is left
            pass
        detaching = threading.Thread(target=self._detach, name="gilstat-detach", daemon=True)
        detaching.start()
        detaching.join(max(deadline - time.monotonic(), MIN_UNLOAD_WAIT))
        if not detaching.is_alive():
            self._wait_frida_gone(max(deadline, time.monotonic() + MIN_UNLOAD_WAIT))
        return max(len(open_calls), 1) if detaching.is_alive() else 0

    def _wait_frida_gone(self, until: float) -> None:
        """Until what frida's injection mapped is unmapped and no thread is traced (bounded).

        frida finishes its unload after the detach returns: its helper then stops the main
        thread and makes it call munmap on the loader's memory (a call that returns to a
        deliberately bad address the helper catches). A helper that loses its host, our
        process, in the middle of that leaves the thread to run into that address (seen:
        SIGSEGV at 0x320 with munmap's arguments in its registers).
        """
        while time.monotonic() < until:
            try:
                left = self.frida_left()
            except (OSError, TargetError):  # gone
                return
            if left == ([], False):
                return
            time.sleep(0.02)

    def frida_left(self) -> tuple[list[tuple[int, int]], bool]:
        """What of frida's injection is still there: its executable regions still mapped, and whether
        a thread of the target is traced (frida's helper at work)."""
        mapped = [
            (entry.start, entry.end)
            for entry in procfs.read_maps(self.pid)
            if "x" in entry.perms and any(lo < entry.end and entry.start < hi for lo, hi in self._injected)
        ]
        return mapped, any(procfs.thread_tracer(self.pid, tid) for tid in procfs.thread_ids(self.pid))

    def _unhook(self) -> list[OpenCall]:
        """The calls inside the hooks at the unhook; unfrozen only when the threads cannot be stopped.

        Leaving the hooks in is never the safer choice: frida's unload would take them out
        unfrozen anyway.
        """
        try:
            pause, listed = self._patch("unhook")
            self.unhook_seconds += pause.seconds
        except OSError:  # FreezeError included
            self.unpaused += 1
            listed = self.script.exports_sync.unhook()
        return [OpenCall(int(tid), int(slot, 16)) for tid, slot in listed]

    def _flush_once_out(self, open_calls: list[OpenCall], deadline: float) -> list[OpenCall]:
        """Free the trampolines the unhook kept once the calls inside have left; those still inside.

        frida keeps the trampolines of a call inside at the unhook and frees them at its next
        transaction once its count is 0 — which, left to frida's unload, happens while the
        target runs. We make that transaction ourselves, with the threads stopped, once every
        such call has left (looked at unstopped first: most calls leave within milliseconds,
        and each stop pauses the whole target).
        """
        while True:
            open_calls = self._still_inside(open_calls)
            if not open_calls:  # left for good: no call can put the word back once the hooks are out
                self.unhook_seconds += self._patch("flush")[0].seconds
                return []
            if time.monotonic() >= deadline:
                return open_calls
            time.sleep(FLUSH_RETRY)

    def _still_inside(self, open_calls: list[OpenCall]) -> list[OpenCall]:
        """The calls whose return address still points into frida's code (its leave trampoline).

        frida writes that address over the call's return address just after our enter callback;
        on the way out its leave trampoline puts the caller's address back in that word, and no
        call can put frida's there again once the hooks are out. A thread that is gone has left
        too. (A call caught between our callback and frida's write reads as gone for those
        microseconds: at worst we flush while it is inside, and frida keeps its trampoline.)
        """
        alive = set(procfs.thread_ids(self.pid))
        code = self._frida_code()
        inside = []
        for call in open_calls:
            data = ptrace_sys.try_read(self.pid, call.slot, 8) if call.tid in alive else None
            word = int.from_bytes(data, "little") if data else 0
            if any(lo <= word < hi for lo, hi in code):
                inside.append(call)
        return inside

    def _prologues(self) -> list[tuple[int, int]]:
        """The bytes frida rewrites (a thread stopped at a function's first byte runs what is there after)."""
        return [(address + 1, address + PATCH_SPAN) for address in [*self.functions.take, *self.functions.drop]]

    def _frida_code(self) -> list[tuple[int, int]]:
        """frida's code (its agent, the trampolines, our compiled callbacks): every executable mapping
        that no executable mapping held before frida attached."""
        return [
            (entry.start, entry.end)
            for entry in procfs.read_maps(self.pid)
            if "x" in entry.perms and not any(lo <= entry.start and entry.end <= hi for lo, hi in self._code_before)
        ]

    def _detach(self) -> None:
        try:
            self.session.detach()
        except Exception:  # noqa: BLE001, S110
            pass


def frida_own(maps: list[procfs.MapEntry], before: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The executable regions frida's injection made and its unload unmaps: new since ``before`` and
    anonymous or frida's own file (its agent, a memfd or a file of its helper's).

    Not the system libraries its agent loaded and the target had not (libpthread.so.0, librt.so.1 and
    libdl.so.2 into a Python that never needed them): they stay mapped for the target's life, and
    waiting for them to go made every first gilstat on a process wait out UNHOOK_WAIT (4 s) at its stop.
    """
    return [
        (entry.start, entry.end)
        for entry in maps
        if "x" in entry.perms
        and not any(lo <= entry.start and entry.end <= hi for lo, hi in before)
        and (not entry.path or entry.path.startswith("/memfd:") or "frida" in os.path.basename(entry.path))
    ]


def _wait_main_thread_blocked(pid: int) -> None:
    """Return once the main thread waits in a blocking system call; a one-line refusal after MAIN_WAIT.

    frida's injector stops the main thread wherever it is, runs its loader there, and puts back
    only the general registers: a thread caught between loading a vector register and storing
    it stores what frida's code left there (seen: two of Condition.__exit__'s three None
    arguments written as NULL, and the target killed by SIGSEGV). At a system call the ABI
    leaves no vector register live, so frida is let in while the thread waits in one. (It
    could wake before frida stops it; the window is frida's start, tens of milliseconds.)
    """
    deadline = time.monotonic() + MAIN_WAIT
    while True:
        state = procfs.read_thread_state(pid, pid)
        if state is None:
            raise TargetError("pid %d has exited" % pid)
        if state.syscall in procfs.SAFE_SYSCALLS:
            return
        if time.monotonic() >= deadline:
            raise CommandError(
                "gilstat: the main thread of pid %d did not wait in a system call for %.0f s; frida's injector "
                "would stop it mid-computation and restore only its general registers, which can corrupt what it "
                "computes: try again when the main thread is idle" % (pid, MAIN_WAIT)
            )
        time.sleep(0.001)


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
        "open_at": OPEN_AT * 8,
        "threads": MAX_THREADS,
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
#define OPEN (state + HDR + MAXT * NF + RING * 4)

/* The calls inside the hooked functions, one entry per thread: its tid, and the address of the
   call's return address (0 once it left). frida writes its leave trampoline's address there; the
   client reads the entries at the unhook and knows each call has left once that word no longer
   points into frida's code.
   Threads enter take_gil without the GIL, so an entry is claimed with a locked compare-exchange;
   after that only its own thread writes it. */
static u64 * open_entry (u64 tid)
{
  int n;
  for (n = 0; n < MAXT; n++)
  {
    u64 * e = OPEN + ((tid + n) %% MAXT) * 2;
    u64 seen = 0;
    if (e[0] == tid)
      return e;
    if (e[0] != 0)
      continue;
    __asm__ __volatile__ ("lock; cmpxchgq %%2, (%%1)" : "+a" (seen) : "r" (e), "r" (tid) : "memory", "cc");
    if (seen == 0)
      return e;
  }
  return 0;
}

static void opened (GumInvocationContext * ic)
{
  u64 * e = open_entry (gum_invocation_context_get_thread_id (ic));
  if (e != 0)
    e[1] = (u64) ic->cpu_context->rsp;
}

static void closed (GumInvocationContext * ic)
{
  u64 * e = open_entry (gum_invocation_context_get_thread_id (ic));
  if (e != 0)
    e[1] = 0;
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
  Pending * p;
  opened (ic);  /* first: before the call leaves frida's code for the vDSO's clock */
  p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  p->start = now ();
}

void take_leave (GumInvocationContext * ic)
{
  u64 t = now ();
  Pending * p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  u64 tid = gum_invocation_context_get_thread_id (ic);
  u64 * s;
  u64 wait;
  closed (ic);
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
  u64 t;
  Pending * p;
  u64 * s;
  u64 hold;
  opened (ic);  /* first: before the call leaves frida's code for the vDSO's clock */
  t = now ();
  p = gum_invocation_context_get_listener_thread_data (ic, sizeof (Pending));
  s = slot_for (gum_invocation_context_get_thread_id (ic));
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
  closed (ic);
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
  hook() {  // the open calls of an earlier unhook never saw their leave: start the table afresh
    state.add(%(open_at)d).writeByteArray(new Uint8Array(%(threads)d * 16).buffer);
    for (const a of %(take)s)
      listeners.push(Interceptor.attach(ptr(a), { onEnter: cm.take_enter, onLeave: cm.take_leave }));
    for (const a of %(drop)s)
      listeners.push(Interceptor.attach(ptr(a), { onEnter: cm.drop_enter, onLeave: cm.drop_leave }));
    Interceptor.flush();
  },
  unhook() {  // runs with the target's threads stopped: the open calls are exactly those inside
    for (const l of listeners) l.detach();
    listeners.length = 0;
    Interceptor.flush();
    const open = [];
    for (let i = 0; i < %(threads)d; i++) {
      const entry = state.add(%(open_at)d + i * 16);
      const slot = entry.add(8).readPointer();
      if (!slot.isNull())
        open.push([entry.readU64().toString(), slot.toString()]);
    }
    return open;
  },
  flush() { Interceptor.flush(); },  // frees the trampolines the calls inside at the unhook kept
};
"""
