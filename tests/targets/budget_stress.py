"""Hammers the user-code budget's stop in application threads (test_budget_stress); stdlib only, 3.8+.

Usage: PYTHONPATH=<src> budget_stress.py THREADS ROUNDS

The agent's own ``services.usercode`` and ``services.callexpr``, loaded in this
interpreter, run the way a ``watch -f`` runs them in a target: THREADS
application threads each evaluate, ROUNDS times, a guarded filter that never
ends (or ends around its budget), until the watchdog stops it and the guard is
switched off. The watchdog looks every millisecond and the GIL changes hands
every 0.2 ms, so the stop is posted and delivered at as many points as we can
provoke. The shapes include those CPython's compiler leaves holes for in a
``try`` (3.13's inlined comprehensions with a condition, 3.14's inlined
``all``/``any`` over a generator). Application threads have no handler of
their own: anything of ours that escapes ends the thread, and the
application's ``threading.excepthook`` and ``sys.unraisablehook`` record it.

Also, on 3.11+, every instruction of our frames between the marking and the
unmarking must be covered by a handler in the code object's exception table
(``holes`` lists those that are not).

Prints one JSON line: escaped, finished (threads that completed all rounds),
stopped (evaluations the watchdog ended), holes.
"""

import dis
import inspect
import json
import random
import sys
import threading

from flight_profiler.services import callexpr, usercode

BUDGET_MS = 3.0
NEVER_ENDING = [
    "all(True for _ in iter(int, 1))",
    "any(False for _ in iter(int, 1))",
    "[y for x in iter(int, 1) for y in (x, x) if y]",
    "{x for x in iter(int, 1) if x}",
    "sum(1 for _ in iter(int, 1))",
    "(lambda: [x for x in iter(int, 1) if x])()",
]
AROUND_BUDGET = "sum(1 for _ in range(args[0])) >= 0"  # ends before or after its budget, by chance
# instructions that neither raise nor look at the eval breaker (3.14 leaves NOT_TAKEN out of the table;
# 3.11 gives the jump that leaves a try body the body's last line)
CANNOT_RAISE = {"NOT_TAKEN", "NOP", "CACHE", "EXTENDED_ARG", "JUMP_FORWARD"}

ESCAPED = []
# one entry per stopped evaluation: list.append is one C call, where ``STOPPED[0] += 1`` (load, add,
# store) lost counts when the 0.2 ms switch interval fell between the load and the store (CI: 318 of 320)
STOPPED = []


def record_thread(args):
    ESCAPED.append("thread %s: %s" % (getattr(args.thread, "name", None), args.exc_type.__name__))


def record_unraisable(args):
    ESCAPED.append("unraisable: %s" % type(args.exc_value).__name__)


def forever():
    while True:
        pass


def filter_round(source, on_exit, rng):
    guard = usercode.Guard("filter %r" % source, BUDGET_MS)
    try:
        check = callexpr.CallExpression(source).guarded(False, guard, on_exit=on_exit)
        extra = (None, 0.0) if on_exit else ()
        tries = 0
        while not guard.off:
            # the around-the-budget filter's range grows every 100 evaluations that ended in time: a thread
            # left alone (its siblings done) ran it 2-3 ms per evaluation, under the budget, for 11 s on 3.8
            tries += 1
            if check((rng.randrange(1, 60000 * (1 + tries // 100)),), None, *extra):
                continue  # a match: the around-the-budget filter ended in time
        if check((1,), None, *extra) is not False:
            raise AssertionError("a switched-off filter matched")
        STOPPED.append(1)
    finally:
        guard.close()


def guard_round():
    guard = usercode.Guard("capture", BUDGET_MS)
    try:
        if guard.call(forever) is not usercode.FAILED or not guard.off:
            raise AssertionError("a never-ending capture was not stopped")
        STOPPED.append(1)
    finally:
        guard.close()


def application(index, rounds, finished):
    rng = random.Random(index)
    shapes = [*NEVER_ENDING, AROUND_BUDGET]
    for count in range(rounds):
        step = (index + count) % (len(shapes) + 1)
        if step == len(shapes):
            guard_round()
        else:
            filter_round(shapes[step], count % 2 == 1, rng)
        sum(range(100))  # the application's own code right after our evaluation
    finished.append(index)


def protected_lines(lines, start, first, last):
    """Line numbers, counted from ``start``, from the line containing ``first`` to the next containing ``last``."""
    begin = next(i for i, line in enumerate(lines) if first in line)
    end = next(i for i, line in enumerate(lines) if i > begin and last in line)
    return range(start + begin, start + end + 1)


def protected_in(fn, first, last):
    lines, start = inspect.getsourcelines(fn)
    return protected_lines(lines, start, first, last)


def holes_in(code, lines):
    entries = dis.Bytecode(code).exception_entries
    found = []
    for ins in dis.get_instructions(code):
        line = ins.positions.lineno if ins.positions is not None else None
        covered = any(entry.start <= ins.offset < entry.end for entry in entries)
        if line in lines and ins.opname not in CANNOT_RAISE and not covered:
            found.append("%s+%d %s (line %s)" % (code.co_name, ins.offset, ins.opname, line))
    return found


class _Blank(dict):
    """Fills the template's other fields with nothing (their lines stay where they are)."""

    def __missing__(self, key):
        return ""


def holes():
    if sys.version_info < (3, 11):
        return []  # a block stack, not a table: the handler covers everything up to POP_BLOCK
    guard = usercode.Guard("filter", BUDGET_MS)
    try:
        found = []
        for on_exit in (False, True):
            wrapper = callexpr.CallExpression(NEVER_ENDING[0]).guarded(False, guard, on_exit=on_exit).__code__
            source = callexpr._GUARDED % _Blank(params="args, kwargs" + (", return_obj, cost" if on_exit else ""))
            lines = protected_lines(source.splitlines(), 1, "_fp_active[_fp_i] = _fp_m", "_fp_leave(")
            found += holes_in(wrapper, lines)
        marked = protected_in(usercode.run_marked, "ACTIVE[ident]", "_settle(ident, mark)")  # to the unmarking's end
        found += holes_in(usercode.run_marked.__code__, marked)
        found += holes_in(usercode._settle.__code__, protected_in(usercode._settle, "_lock.acquire()", "finally:"))
        return found
    finally:
        guard.close()


def main():
    threads_wanted, rounds = int(sys.argv[1]), int(sys.argv[2])
    threading.excepthook = record_thread
    sys.unraisablehook = record_unraisable
    usercode.POLL = 0.001
    sys.setswitchinterval(0.0002)
    finished = []
    threads = [
        threading.Thread(target=application, args=(index, rounds, finished), name="app-%d" % index)
        for index in range(threads_wanted)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usercode.stop_watchdog()
    result = {"escaped": ESCAPED, "finished": len(finished), "stopped": len(STOPPED), "holes": holes()}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
