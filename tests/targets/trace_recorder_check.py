"""Run by tests/unit/test_trace_recorder.py under each interpreter, with the sources on sys.path.

Traces the same invocations with each recorder the trace agent has (the profile function, and on
3.12+ the sys.monitoring tool) and prints one JSON line: the trees' shapes and counts, the tool ids
held afterwards, and what became of the thread's own profiler. Stdlib only.
"""

import asyncio
import gc
import json
import sys
import threading

from flight_profiler.commands.trace import agent

LOG = []


def leaf(i):
    return len([i]) * 2


def gen(n):
    for i in range(n):
        yield leaf(i)


def fails():
    raise ValueError("x")


def handle(n):
    total = 0
    for i in range(n):
        total += leaf(i)
    total += sum(gen(3))
    try:
        fails()
    except ValueError:
        pass
    total += max([1, 2]) + sorted([3, 1], key=abs)[0]
    return total


class Handle:
    def __init__(self, code=None):
        self.code = code or handle.__code__

    def root_codes(self):
        return (self.code,)


def countdown(n):
    for i in range(n):
        leaf(i)
        yield i


async def inner():
    await asyncio.sleep(0)
    return leaf(1)


async def outer():
    leaf(0)
    await inner()
    await asyncio.sleep(0.001)
    return leaf(2)


def mid(n):
    for i in range(n):
        leaf(i)


def wide(n):
    for _ in range(n):
        mid(3)


def big(monitoring, request):
    """28 000 calls under the root: several buffers replayed before it ends, MAX_NODES reached."""
    agent.PREFER_MONITORING = monitoring
    probe = agent.TraceProbe(dict(request, limit=1), False, "function")
    probe.handle = Handle(wide.__code__)
    run = probe._begin((), {})
    wide(4000)
    probe.leave(run, (), {}, None, None)
    probe.stop()
    item = run.result(1, 1.0, None)
    return [count(item["root"]), item["hidden"], item["truncated"], item.get("deeper", 0), run.broken]


def count(node):
    return 1 + sum(count(child) for child in node.get("children", []))


def stepped(monitoring, kind, code, start):
    """A generator's or coroutine's tree, stepped one resumption at a time as the hook does."""
    agent.PREFER_MONITORING = monitoring
    probe = agent.TraceProbe({"limit": 1, "interval": 0}, False, kind)
    probe.handle = Handle(code)
    run = agent.TraceRun(probe, (code,))
    start(probe, run)
    probe.stop()
    return shape(run.result(1, 1.0, None)["root"]), run.broken


def run_generator(probe, run):
    list(probe.drive(run, countdown(3)))


def run_coroutine(probe, run):
    async def main():
        return await probe.drive(run, outer().__await__())

    asyncio.run(main())


def shape(node):
    return [node["name"].rsplit(".", 1)[-1], [shape(child) for child in node.get("children", [])]]


def trace(monitoring, request):
    agent.PREFER_MONITORING = monitoring
    probe = agent.TraceProbe(dict(request, limit=10), False, "function")
    probe.handle = Handle()
    run = probe._begin((), {})
    handle(4)
    probe.leave(run, (), {}, None, None)
    used_monitor = probe.monitor is not None
    probe.stop()
    item = run.result(1, 1.0, None)
    deeper = item.get("deeper", 0)
    return {
        "shape": shape(item["root"]),
        "hidden": item["hidden"],
        "deeper": deeper,
        "monitor": used_monitor,
        "broken": run.broken,
    }


SHAPES = []  # the first tree held() saw


def held():
    """3.12+: invocations back to back hold the profiling events on (a thread of ours with a profile
    function) and give the same trees; the holder lets go when they stop, and when the command ends."""
    agent.PREFER_MONITORING = False
    # the earlier checks' garbage (asyncio.run's loop, a cycle) collected now, not inside a traced
    # invocation: its __del__ would be in that one tree (seen once the runs below were kept alive)
    gc.collect()
    started = []
    start = agent.Holder.start
    agent.Holder.start = lambda holder: (started.append(holder), start(holder))[1]  # each one, whenever it ends
    probe = agent.TraceProbe({"limit": 10**6, "interval": 0}, False, "function")
    probe.handle = Handle()
    runs = []
    # back to back, the trees made afterwards: made in between they took about as long as the traced
    # invocations, so the traced share of the wall time sat near HOLD_SHARE and a loaded host's
    # preemptions kept it below in all of three windows (no holder: once in a full run, 3.14). Up to 30
    # windows here, at least 3: one before holding and some while held
    while len(runs) < agent.HOLD_EVERY * 30 and not (started and len(runs) >= agent.HOLD_EVERY * 3):
        run = probe._begin((), {})
        handle(4)
        probe.leave(run, (), {}, None, None)
        runs.append(run)
    shapes = [shape(run.result(1, 1.0, None)["root"]) for run in runs]
    out = {"started": len(started) >= 1, "shape": shapes[0]}
    out["same_trees"] = all(found == shapes[0] for found in shapes)
    SHAPES[:] = shapes[:1]
    out["own_profile_back"] = sys.getprofile() is None
    out["let_go_when_idle"] = all(holder.thread.join(10.0) for holder in started) and probe.holder is None
    count = len(started)
    # the first window holds the idle wait above: never a hold
    traced(probe, agent.HOLD_EVERY * 4, until=lambda: len(started) > count)
    out["held_again"] = len(started) > count
    probe.stop()
    out["gone_after_stop"] = not any(holder.thread.is_alive() for holder in started) and not agent._HOLDERS
    probe = agent.TraceProbe({"limit": 10**6, "interval": 0}, False, "function")  # detach, before the job's cleanup
    probe.handle = Handle()
    count = len(started)
    traced(probe, agent.HOLD_EVERY * 4, until=lambda: len(started) > count)
    agent.context.run_detach_callbacks()
    out["gone_at_detach"] = (
        len(started) > count and not any(h.thread.is_alive() for h in started) and not agent._HOLDERS
    )
    probe.stop()
    out["holder_threads_left"] = [t.name for t in threading.enumerate() if "trace-hold" in t.name]
    agent.Holder.start = start
    out["no_thread_to_be_had"] = refused()
    return out


def refused():
    """No thread can be started (a limit): the invocations are traced as before, the error stays ours."""
    thread_start = agent.realthreads.Thread.start

    def refuse(thread):
        raise RuntimeError("can't start new thread")

    agent.realthreads.Thread.start = refuse
    try:
        probe = agent.TraceProbe({"limit": 10**6, "interval": 0}, False, "function")
        probe.handle = Handle()
        traced(probe, agent.HOLD_EVERY * 3)
        run = probe._begin((), {})
        handle(4)
        probe.leave(run, (), {}, None, None)
        probe.stop()
        return [probe.internal_errors, probe.holder is None, shape(run.result(1, 1.0, None)["root"]) == SHAPES[0]]
    finally:
        agent.realthreads.Thread.start = thread_start


def traced(probe, times, until=None):
    """Invocations back to back, each long enough that most of the wall time is in them (with
    handle(1) our own bookkeeping between them was near half: below the share that holds, at times).
    With ``until``: on, up to 8 times as many, until it holds (a loaded host's preemptions can keep
    the share below it for a few windows)."""
    for done in range(times * 8 if until is not None else times):
        if done >= times and until():
            return
        run = probe._begin((), {})
        handle(4)
        probe.leave(run, (), {}, None, None)


def own_profiler(frame, event, arg):
    LOG.append(event)


def main():
    requests = {"all": {"interval": 0}, "depth": {"depth": 2}, "none": {"interval": 100000}}
    out = {"version": list(sys.version_info[:2])}
    recorders = [False, True] if hasattr(sys, "monitoring") else [False]
    for name, request in requests.items():
        out[name] = [trace(monitoring, request) for monitoring in recorders]
    out["big"] = {name: [big(m, request) for m in recorders] for name, request in requests.items()}
    out["generator"] = [stepped(m, "generator", countdown.__code__, run_generator) for m in recorders]
    out["coroutine"] = [stepped(m, "coroutine", outer.__code__, run_coroutine) for m in recorders]
    if hasattr(sys, "monitoring"):
        out["held_after"] = [tool for tool in range(6) if sys.monitoring.get_tool(tool) is not None]
        sys.monitoring.use_tool_id(3, "somebody")  # another tool holds 3: ours takes the next free one
        agent.PREFER_MONITORING = True
        probe = agent.TraceProbe({"limit": 1, "interval": 0}, False, "function")
        probe.handle = Handle()
        run = probe._begin((), {})
        out["taken_beside"] = probe.monitor.tool if probe.monitor is not None else None
        handle(1)
        probe.leave(run, (), {}, None, None)
        probe.stop()
        out["somebody_kept"] = sys.monitoring.get_tool(3)
        out["held_at_end"] = [tool for tool in range(6) if sys.monitoring.get_tool(tool) is not None]
    if agent.HOLDS:
        out["held"] = held()
    # the thread's own (Python) profiler: kept running beside ours on 3.12+, put back before
    agent.PREFER_MONITORING = False
    sys.setprofile(own_profiler)
    probe = agent.TraceProbe({"limit": 1, "interval": 0}, False, "function")
    probe.handle = Handle()
    run = probe._begin((), {})
    del LOG[:]
    handle(1)
    seen_during = len(LOG)
    probe.leave(run, (), {}, None, None)
    probe.stop()
    out["own_profiler_back"] = sys.getprofile() is own_profiler
    sys.setprofile(None)
    out["own_profiler_saw_calls"] = seen_during > 0
    out["own_profiler_shape"] = shape(run.result(1, 1.0, None)["root"]) if run.root is not None else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
