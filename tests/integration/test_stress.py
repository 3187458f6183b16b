"""Attach/command/detach cycles on one busy target, as a leak detector.

One difference of RSS against a fixed bound passes or fails by a coin flip (the
target's garbage collector and allocator decide when memory shows). A leak is a
trend: the least-squares slope of RSS over many cycles, after a warm-up that lets
the allocator reach its working set, must stay below ``MAX_SLOPE_KIB``. The
target's ``sys.modules`` must come back to its baseline plus the C modules the
agent states it leaves (``ALLOWED_MODULES``, see ARCHITECTURE.md).

Each cycle runs a read-only command (getglobal), after which the detach empties our
namespaces at once (agent/sweep.py ``sweep_when_idle``); after a hook the collector
frees them instead. ``FP_TEST_HOGS=2`` runs the module beside two CPU hogs.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from flight_profiler.attach.attacher import AttachOptions, existing_agent
from flight_profiler.cli.output import Output
from flight_profiler.cli.runner import Runner
from interpreters import find_interpreters
from support import cpu_hogs, fd_count, start_target, target_modules, wait_until


@pytest.fixture(scope="module", autouse=True)
def _hogs() -> Iterator[None]:
    """FP_TEST_HOGS=2: two CPU hogs beside the whole module (the claim is "healthy under load")."""
    with cpu_hogs():
        yield


WARMUP = 30
# CI measures 120 cycles (on the oldest and the newest interpreter: the serial pass's longest test);
# FP_STRESS_CYCLES=200 or more for a long run. A step of one pymalloc arena (~1 MiB) somewhere in the
# run adds at most about 1.5 MiB / cycles to the slope: 13 KiB at 120 cycles, still well under the
# bound below with the slopes measured since the sweep on detach (4-7 KiB on 3.8 and 3.14/3.15).
CYCLES = int(os.environ.get("FP_STRESS_CYCLES", "120"))
# KiB per cycle, of RSS sampled after the target's own full collection (its SIGUSR2 handler): our
# cyclic garbage awaiting the target's collector is not a leak, and without the collection it made
# the slope a matter of when the collector ran (12-18 KiB measured here, 44 once in CI on 3.15, in
# steps of 1-2 MiB). With it, 120 cycles beside two CPU hogs: -5.0 (3.8), 4.8 (3.15); it still was 3-21 KiB
# on 3.8 run after run, and 46 once, from malloc's per-thread arenas (see the test): with one arena,
# -2.7 to -0.5 on 3.8 (3 runs) and -9.9 / 0.1 on 3.15 (2 runs), RSS within 0.6 MiB over the run. The bound
# still catches leaks of the size issue 15 reported (43 KiB per cycle; +5 MB for one attach).
MAX_SLOPE_KIB = 32.0
# extension modules cannot be unloaded: the agent's own (_json, _socket) stay if the target lacked them
ALLOWED_MODULES = {"_json", "_socket"}


def _rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slope(values: list[int]) -> float:
    """Least-squares slope of ``values`` over their index."""
    count = len(values)
    mean_x = (count - 1) / 2
    mean_y = sum(values) / count
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(count))
    return num / den


def test_slope_helper() -> None:
    assert slope([5, 7, 9, 11]) == pytest.approx(2.0)
    assert slope([3, 3, 3]) == pytest.approx(0.0)


INTERPRETERS = find_interpreters()
PICK = [INTERPRETERS[0], INTERPRETERS[-1]] if len(INTERPRETERS) > 1 else INTERPRETERS  # oldest and newest


def _cycle(pid: int, cycle: int) -> None:
    """What ``flight_profiler PID --cmd "getglobal __main__ __name__"`` and then ``flight_profiler PID
    --cmd detach`` do to the target, through the client's own runner (cli/runner.py) in this process:
    one session that attaches and runs the command and ends when its client goes, then a second one
    that finds the agent and detaches it. The same sessions, injections and detaches as two client
    processes a cycle, without starting 460 of them, which made this test most of the serial pass
    (a cycle took 5-8 s that way at load 30, under 1 s this way; the CLI itself is every other test's).
    """
    command = Runner(pid, Output(True, color=False), AttachOptions(timeout=60))
    try:
        assert command.execute("getglobal __main__ __name__"), cycle
    finally:
        command.close()
    agent = existing_agent(pid, timeout=60)  # what Runner.detach does, with the agent's presence checked
    assert agent is not None, cycle
    assert agent.detach(timeout=60) == (True, ""), cycle  # confirmed, nothing of ours is left busy


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("name", "python"), PICK, ids=[i for i, _ in PICK])
def test_repeated_attach_detach_cycles(name: str, python: str) -> None:
    # one malloc arena: glibc gives threads up to 8 arenas per core, each one's heap touched as our
    # threads land on it, so RSS rose by ~1 MiB steps over the first ~80 cycles and then stayed (46 KiB
    # per cycle once in a full run, on 3.8): the allocator's working set, not a leak
    env = dict(os.environ, PYTHONFAULTHANDLER="1", MALLOC_ARENA_MAX="1")
    target = start_target(python, "hostile_target.py", "busy2", env=env)  # two CPU-bound threads
    try:
        baseline, baseline_fds = target_modules(target), fd_count(target.pid)
        rss: list[int] = []
        for cycle in range(WARMUP + CYCLES):
            _cycle(target.pid, cycle)
            if cycle == 0:
                added = target_modules(target) - baseline
                assert added <= ALLOWED_MODULES, added
            if cycle >= WARMUP:
                target_modules(target)  # after the target's own full collection (its SIGUSR2 handler)
                rss.append(_rss_kib(target.pid))
        growth = slope(rss)
        print(
            "%s: RSS slope %.2f KiB/cycle over %d cycles (%d -> %d KiB; every 20th: %s)"
            % (name, growth, CYCLES, rss[0], rss[-1], " ".join(map(str, rss[::20])))
        )
        assert growth < MAX_SLOPE_KIB, "RSS grows %.1f KiB per cycle: %s" % (growth, rss)
        assert target_modules(target) == baseline | added  # no module more than after the first cycle
        # the last agent's threads close their descriptors just after detach answers: wait for that
        assert wait_until(lambda: fd_count(target.pid) <= baseline_fds, timeout=15), (
            baseline_fds,
            fd_count(target.pid),
        )
        os.kill(target.pid, signal.SIGUSR1)
        assert target.proc.wait(15) == 0
    finally:
        target.stop()
