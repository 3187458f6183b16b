"""``dashboard`` in the target: one refreshing view of threads, CPU, memory, GC and hot functions.

Read-only: nothing is hooked. Per frame the job thread reads the process's and its
threads' CPU time from ``/proc/self`` at both ends of the interval, looks at every
thread's innermost Python frame every ``SAMPLE_MS`` in between (``sys._current_frames``),
and attributes each thread's CPU time to the functions it was seen in, in proportion
to its samples: a thread parked in ``sleep`` has no CPU and so gives its function none.
GC pauses are timed by a ``gc.callbacks`` entry, the one thing added to the target,
removed on every exit path (frames done, Ctrl-C, the client gone, detach).
"""

from __future__ import annotations

import _thread
import gc
import os
import sys
import time

from ...services.context import AGENT_THREAD_IDS, JobContext
from ...services.describe import short
from .model import DEFAULTS, SAMPLE_MS, TOP_FUNCTIONS, TOP_THREADS

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .model import DashboardRequest

perf_counter = time.perf_counter
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class GcTimer:
    """A ``gc.callbacks`` entry timing each collection; never raises into the collector."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def __call__(self, phase: str, info: Any) -> None:
        try:
            if phase == "start":
                self.started = perf_counter()
            elif self.started:
                spent = perf_counter() - self.started
                self.started = 0.0
                self.count += 1
                self.total += spent
                if spent > self.max:
                    self.max = spent
        except BaseException:  # noqa: BLE001, S110 - the collector must never see ours
            pass

    def take(self) -> tuple[int, float, float]:
        taken = (self.count, self.total, self.max)
        self.count, self.total, self.max = 0, 0.0, 0.0
        return taken


def run(request: DashboardRequest, ctx: JobContext) -> None:
    interval = int(request.get("interval", DEFAULTS["interval"])) / 1000.0
    frames = int(request.get("frames", DEFAULTS["frames"]))
    timer = GcTimer()
    gc.callbacks.append(timer)
    ctx.add_cleanup(lambda: _remove(timer))
    index = 0
    while not frames or index < frames:
        index += 1
        frame = _frame(interval, ctx, timer)
        if frame is None:
            return  # cancelled
        frame["index"] = index
        ctx.emit(frame)


def _remove(timer: GcTimer) -> None:
    while timer in gc.callbacks:
        gc.callbacks.remove(timer)


def _frame(interval: float, ctx: JobContext, timer: GcTimer) -> dict[str, Any] | None:
    started = time.monotonic()
    before = _cpu_times()
    process_before = _process_cpu()
    samples: dict[int, dict[tuple[str, str, int], int]] = {}
    looks = 0
    while True:
        left = interval - (time.monotonic() - started)
        if left <= 0:
            break
        if ctx.wait(min(SAMPLE_MS / 1000.0, left)):
            return None
        _sample(samples)
        looks += 1
    seconds = max(time.monotonic() - started, 1e-6)
    after = _cpu_times()
    threads = _threads(before, after, seconds)
    count, total, longest = timer.take()
    return {
        "kind": "frame",
        "time": time.time(),
        "seconds": round(seconds, 3),
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "rss_kb": _rss_kb(),
        "fds": _fd_count(),
        "cpu": round(100.0 * (_process_cpu() - process_before) / seconds, 1),
        "threads_total": len(threads),
        "threads": sorted(threads.values(), key=lambda t: (-t["cpu"], t["tid"]))[:TOP_THREADS],
        "gc": _gc(count, total, longest),
        "functions": _hottest(samples, threads),
        "samples": looks,
    }


def _sample(samples: dict[int, dict[tuple[str, str, int], int]]) -> None:
    """One look at every application thread's innermost frame (codes kept, never frames)."""
    for ident, code in [(ident, frame.f_code) for ident, frame in sys._current_frames().items()]:
        if ident in AGENT_THREAD_IDS:
            continue
        key = (getattr(code, "co_qualname", code.co_name), code.co_filename, code.co_firstlineno)
        seen = samples.setdefault(ident, {})
        seen[key] = seen.get(key, 0) + 1


def _cpu_times() -> dict[int, tuple[int, str, str]]:
    """Per native thread id: (utime + stime in ticks, kernel state letter, comm)."""
    found: dict[int, tuple[int, str, str]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return found
    for name in tids:
        try:
            with open("/proc/self/task/%s/stat" % name, "rb") as fh:
                raw = fh.read()
        except OSError:
            continue  # the thread ended meanwhile
        head, _, rest = raw.rpartition(b")")
        fields = rest.split()
        if len(fields) < 13:
            continue
        comm = head.partition(b"(")[2].decode("utf-8", "replace")
        found[int(name)] = (int(fields[11]) + int(fields[12]), fields[0].decode("ascii", "replace"), comm)
    return found


def _process_cpu() -> float:
    times = os.times()
    return times[0] + times[1]


def _threads(
    before: dict[int, tuple[int, str, str]], after: dict[int, tuple[int, str, str]], seconds: float
) -> dict[int, dict[str, Any]]:
    named = _python_threads()
    # the agent's threads are threading.Threads once threading is loaded; without it only this one is known
    agent_tids = {named[ident][2] for ident in named if ident in AGENT_THREAD_IDS} | {_thread.get_native_id()}
    by_tid = {tid: (ident, name, daemon) for ident, (name, daemon, tid) in named.items()}
    threads: dict[int, dict[str, Any]] = {}
    for tid, (ticks, state, comm) in after.items():
        if tid in agent_tids:
            continue
        spent = ticks - before.get(tid, (ticks, "", ""))[0]
        ident, name, daemon = by_tid.get(tid, (None, comm, None))
        threads[tid] = {
            "tid": tid,
            "ident": ident,
            "name": name,
            "daemon": daemon,
            "state": state,
            "cpu": round(100.0 * spent / CLK_TCK / seconds, 1),
        }
    return threads


def _python_threads() -> dict[int, tuple[str, bool | None, int | None]]:
    """ident -> (name, daemon, native id) of the threading.Thread objects, when threading is loaded."""
    threading = sys.modules.get("threading")  # never imported by us: an idle target may not have it
    active = getattr(threading, "_active", None) if threading is not None else None
    found: dict[int, tuple[str, bool | None, int | None]] = {}
    for ident, thread in list(active.items()) if isinstance(active, dict) else []:
        try:
            found[ident] = (short(str(thread.name)), bool(thread.daemon), getattr(thread, "native_id", None))
        except Exception:  # noqa: BLE001, S112 - a Thread subclass with odd properties: left unnamed
            continue
    return found


def _hottest(
    samples: dict[int, dict[tuple[str, str, int], int]], threads: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Functions by the CPU time of the threads seen in them, split by how often each was seen there."""
    cpu_of = {thread["ident"]: thread["cpu"] for thread in threads.values() if thread["ident"] is not None}
    score: dict[tuple[str, str, int], list[float]] = {}
    for ident, seen in samples.items():
        looks = sum(seen.values())
        share = cpu_of.get(ident, 0.0)
        for key, count in seen.items():
            entry = score.setdefault(key, [0.0, 0])
            entry[0] += share * count / looks
            entry[1] += count
    ranked = sorted(score.items(), key=lambda item: (-item[1][0], -item[1][1]))[:TOP_FUNCTIONS]
    return [
        {"name": key[0], "file": key[1], "line": key[2], "cpu": round(value[0], 1), "samples": int(value[1])}
        for key, value in ranked
    ]


def _gc(count: int, total: float, longest: float) -> dict[str, Any]:
    stats = gc.get_stats()
    return {
        "enabled": gc.isenabled(),
        "counts": list(gc.get_count()),
        "collections": [int(s.get("collections", 0)) for s in stats],
        "collected": [int(s.get("collected", 0)) for s in stats],
        "uncollectable": [int(s.get("uncollectable", 0)) for s in stats],
        "pauses": count,
        "pause_total_ms": round(total * 1000.0, 3),
        "pause_max_ms": round(longest * 1000.0, 3),
    }


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
