"""The heap walk's cost per object and its stalls, measured in one process (no attach, no CLI).

Run with the interpreter to measure and the sources on the path:

    PYTHONPATH=src python3.8 bench/heapwalk_inproc.py [--objects 1000000] [--what mem|instances|refs]

Builds OBJECTS instances with ``__slots__`` plus one list each (as tests/targets/prof_mem_pause_target.py),
starts a thread that sleeps 1 ms in a loop and records the gaps between its wake-ups, runs one walk on
another thread, and prints: wall time, objects walked, ns per object, the longest gap, how many gaps
were over 10 and 20 ms, and the garbage collections that ran meanwhile (count, longest). Each line
is one JSON object. Nothing is asserted.
"""

import argparse
import gc
import json
import sys
import threading
import time

from flight_profiler.services import heapwalk, realthreads, referrers


class Item:
    __slots__ = ("tags", "value")

    def __init__(self, value):  # type: ignore[no-untyped-def]
        self.value = value
        self.tags = [value]


class Leak:
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--what", default="mem", choices=("mem", "instances", "refs", "near", "idle", "busy"))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    items = [Item(i) for i in range(args.objects)]
    holder = {"k": [[[[[[[Leak()]]]]]]]}
    sys.modules["__main__"].HOLD = (items, holder)  # type: ignore[attr-defined]
    del items, holder
    gaps: list = []
    slow: list = []
    collections: list = []
    state = {"stop": False, "started": 0.0}

    def ticker() -> None:
        last = time.perf_counter()
        while not state["stop"]:
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            if now - last > 0.02:  # where the other threads stand right after a long stall
                slow.append((round((now - last) * 1000, 1), where_others()))
            last = now

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            state["started"] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - state["started"]))

    gc.callbacks.append(on_gc)
    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    for _ in range(args.runs):
        del gaps[:], collections[:], slow[:]
        started = time.perf_counter()
        walked, cpu, pacing = run(args.what)
        seconds = time.perf_counter() - started
        report = {
            "python": "%d.%d" % sys.version_info[:2],
            "what": args.what,
            "seconds": round(seconds, 2),
            "walked": walked,
            "ns_per_object": round(seconds / max(walked, 1) * 1e9),
            "cpu_ns_per_object": round(cpu / max(walked, 1) * 1e9),
            "max_gap_ms": round(max(gaps) * 1000, 1),
            "gaps_over_10ms": sum(1 for gap in gaps if gap > 0.010),
            "gaps_over_20ms": sum(1 for gap in gaps if gap > 0.020),
            "ticks": len(gaps),
            "collections": len(collections),
            "longest_collection_ms": round(max([c[1] for c in collections] or [0]) * 1000, 1),
            "by_generation": {g: sum(1 for c in collections if c[0] == g) for g in (0, 1, 2)},
            "pacing": pacing,
            "slow": slow[:10],
        }
        print(json.dumps(report), flush=True)
    state["stop"] = True
    thread.join()
    gc.callbacks.remove(on_gc)


def where_others() -> list:
    """function:line of the innermost frames of the other threads."""
    found = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident() or frame.f_code.co_name == "main":
            continue
        found.append(
            "%s:%d<%s:%d"
            % (
                frame.f_code.co_name,
                frame.f_lineno,
                frame.f_back.f_code.co_name if frame.f_back else "",
                frame.f_back.f_lineno if frame.f_back else 0,
            )
        )
    return found


def run(what: str) -> tuple:
    done: list = []

    def job() -> None:
        cpu = time.thread_time()
        work(what, done)
        done.append(time.thread_time() - cpu)

    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    return done[0], done[2], done[1]


def work(what: str, done: list) -> None:
    if what in ("idle", "busy"):  # the floors: nothing, or a Python loop that never calls C for long
        end = time.perf_counter() + 3.0
        count = 0
        while time.perf_counter() < end:
            if what == "idle":
                time.sleep(0.05)
            count += 1
        done.append(count)
        done.append({})
    elif what == "mem":
        found = heapwalk.walk(realthreads.Event(), [])
        assert found is not None
        done.append(sum(entry[heapwalk.COUNT] for entry in found.program_types().values()))
        done.append(found.pace.finish())
    elif what == "instances":
        found = heapwalk.walk(realthreads.Event(), [], sizes=False, wanted=lambda kind: kind is Item, keep=3)
        assert found is not None
        done.append(sum(entry[heapwalk.COUNT] for entry in found.program_types().values()))
        done.append(found.pace.finish())
    else:
        kind = Leak if what == "refs" else Item
        result = referrers.analyze(realthreads.Event(), lambda k: k is kind, 3, 100)
        assert result is not None and result.chains, result
        done.append(result.walked)
        done.append(result.pacing)


if __name__ == "__main__":
    main()
