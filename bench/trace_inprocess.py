"""Run by bench/trace_cost.py under one interpreter, with the sources on sys.path: where a traced
sub-call's cost goes, in this process, on the 50-sub-call method hooked by ``trace``'s own probe.

Each variant's cost is the best of 7 alternating windows of process CPU time, less the best plain
run's, per sub-call (µs): the hook alone (never tracing), a profile function that does nothing (the
floor of any profile-function recorder: the steps and the interpreter's calls of it), the recorder
without building the tree, the whole trace (recorder and tree), on 3.12+ the sys.monitoring recorder,
and cProfile. Then, with 4 other threads waiting 30 calls deep (what an application's threads and
the agent's own look like to the interpreter), the trace again, on 3.12+ also with the profiling
events held on (``agent.Holder``), and an experiment: the sys.monitoring recorder's callbacks with
events set once, locally, on the two code objects (what ``set_local_events`` would cost if the
traced subtree's code objects were known in advance). Prints one JSON line. Stdlib only.
"""

import json
import sys
import threading
import time

from flight_profiler.commands.trace import agent
from flight_profiler.services import hooks


def leaf(i):
    return i * 2


class Work:
    def handle(self, n):
        total = 0
        for i in range(n):
            total += leaf(i)
        return total


WORK = Work()
SUB_CALLS = 50


def loop(reps=2000):
    started = time.process_time()
    for _ in range(reps):
        WORK.handle(SUB_CALLS)
    return (time.process_time() - started) / reps


def cprofile():
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return loop()
    finally:
        profiler.disable()


def nop_recorder(run):
    def record(frame, event, arg):
        pass

    return record


def no_tree(run):
    del run.events[:]


def waiting(depth, stop):
    if depth:
        return waiting(depth - 1, stop)
    stop.wait()


def held(probe):
    agent.HOLDS = True
    probe.holder_tried = False
    probe.hold_mark = time.perf_counter()
    probe.hold_mark_profiled = probe.profiled
    try:
        loop(200)  # the holder starts after HOLD_EVERY invocations
        return loop()
    finally:
        probe.stop()  # lets the holder go
        probe.stopped = probe.done = False
        agent.HOLDS = False


def local_events(probe, handle):
    """The sys.monitoring recorder's callbacks with events set once on the root's and leaf's code."""
    monitoring = sys.monitoring
    events = monitoring.events
    agent.PREFER_MONITORING = True
    monitor = probe.get_monitor()
    activate, deactivate = agent.Monitor.activate, agent.Monitor.deactivate
    agent.Monitor.activate = lambda self, ident, run: self.runs.__setitem__(ident, run) or True
    agent.Monitor.deactivate = lambda self, ident: self.runs.pop(ident, None) and None
    codes = [*handle.root_codes(), leaf.__code__]
    wanted = events.PY_START | events.PY_RESUME | events.PY_RETURN | events.PY_YIELD | events.CALL
    for code in codes:
        monitoring.set_local_events(monitor.tool, code, wanted)  # PY_UNWIND cannot be local: left out
    try:
        return loop()
    finally:
        for code in codes:
            monitoring.set_local_events(monitor.tool, code, 0)
        agent.Monitor.activate, agent.Monitor.deactivate = activate, deactivate
        agent.PREFER_MONITORING = False


THREADS = "4 threads waiting 30 deep"


def main():
    holds = agent.HOLDS
    agent.HOLDS = False  # the other variants switch the events per invocation
    recorder, replay = agent.TraceRun._recorder, agent.TraceRun._replay
    probe = agent.TraceProbe({"limit": 10**9, "interval": 0.1, "rate": 10}, True, "function")
    found = {"hook only": [], "do-nothing profile function": [], "recording only": [], "trace": [], "cProfile": []}
    if hasattr(sys, "monitoring"):
        found["trace, sys.monitoring recorder"] = []
        found["sys.monitoring callbacks, local events set once"] = []
    plain = []
    for _ in range(7):
        plain.append(loop())
        found["cProfile"].append(cprofile())
        handle = hooks.install(Work.__dict__["handle"], probe)
        probe.handle = handle
        try:
            probe.done = True
            found["hook only"].append(loop())
            probe.done = False
            agent.TraceRun._recorder = nop_recorder
            found["do-nothing profile function"].append(loop())
            agent.TraceRun._recorder = recorder
            agent.TraceRun._replay = no_tree
            found["recording only"].append(loop())
            agent.TraceRun._replay = replay
            found["trace"].append(loop())
            if hasattr(sys, "monitoring"):
                agent.PREFER_MONITORING = True
                found["trace, sys.monitoring recorder"].append(loop())
                agent.PREFER_MONITORING = False
                found["sys.monitoring callbacks, local events set once"].append(local_events(probe, handle))
        finally:
            agent.TraceRun._recorder, agent.TraceRun._replay = recorder, replay
            handle.remove()
    stop = threading.Event()
    for _ in range(4):
        threading.Thread(target=waiting, args=(30, stop), daemon=True).start()
    found["trace, " + THREADS] = []
    if holds:
        found["trace, events held, " + THREADS] = []
    for _ in range(7):
        handle = hooks.install(Work.__dict__["handle"], probe)
        probe.handle = handle
        try:
            found["trace, " + THREADS].append(loop())
            if holds:
                found["trace, events held, " + THREADS].append(held(probe))
        finally:
            handle.remove()
    stop.set()
    probe.stop()
    agent.HOLDS = holds
    base = min(plain)
    out = {name: (min(times) - base) / SUB_CALLS * 1e6 for name, times in found.items()}
    out["plain invocation"] = base * 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    main()
