"""Target for the instrumentation tests (watch, trace, tt, reload); stdlib only, Python 3.8+.

Usage: instr_target.py RELOAD_DIR
Prints "ready" once every caller runs. Callers exercise every kind of callable
about a hundred times a second, always through aliases, registries, bound
methods and subclasses, so a hook only counts if every reference sees it.
SIGUSR1 ends the process with 0 when every caller is still healthy.

``hooks_gone()`` (called through ``console``) lists the functions whose code
object is not the one they started with; ``TRANSITIONS`` records, from a
thread polling every 2 ms, when each function's code changed (time.monotonic).
"""

import asyncio
import functools
import os
import signal
import sys
import threading
from time import sleep, time  # a module doing this must keep working under watch

logger = "the app's logger"  # a global named logger must keep its value
RELOAD_DIR = sys.argv[1] if len(sys.argv) > 1 else None
if RELOAD_DIR:
    sys.path.insert(0, RELOAD_DIR)
    import instr_reloadable
else:
    instr_reloadable = None

ERRORS = []  # exceptions the callers did not expect: must stay empty
COUNTS = {}


def plain(a, b=2, *rest, scale=1, **opts):
    return (a + b + sum(rest)) * scale


def stamped(x):
    return {"x": x, "at": time() > 0, "logger": logger}


def make_counter():
    total = [0]

    def tick(step):
        total[0] += step
        return total[0]

    return tick


counter = make_counter()
KEPT = []  # closures made while the tests run: must end with their own code


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@logged
def greet(name):
    return "hello " + name


def outer_fn(v):
    def inner_fn(w):
        return w * v

    return inner_fn(v + 1)


def fragile(x):
    if x % 3 == 0:
        raise ValueError("bad %d" % x)
    return x


def hot(x):
    return x + 1


def nap(ms):
    sleep(ms / 1000.0)
    return ms


def remember(bag):
    return len(bag)


def profiled_work(n):
    return sum(range(n))


def countdown(n):
    while n > 0:
        yield n
        n -= 1
    return "liftoff"


async def helper(x):
    await asyncio.sleep(0.002)
    return x * 2


async def fetch(n):
    first = await helper(n)
    await asyncio.sleep(0.001)
    return first + 1


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def validate(order):
    sleep(0.002)
    return bool(order)


def compute_price(order):
    total = 0
    for item in order:
        total += len(item)
    sleep(0.001)
    return apply_discount(total)


def apply_discount(total):
    sleep(0.001)
    return total * 0.9


class Shop:
    def __init__(self, name):
        self.name = name
        self.items = []

    def buy(self, item, qty=1):
        self.items.append((item, qty))
        del self.items[:-5]
        return len(self.items)

    @classmethod
    def create(cls, n):
        return cls("shop-%d" % n)

    @staticmethod
    def tax(value):
        return round(value * 0.2, 2)

    @property
    def total(self):
        return sum(q for _, q in self.items)

    def order(self, items):
        validate(items)
        return compute_price(items)

    def describe(self):
        return super().__repr__()[:1] + self.name


class Special(Shop):
    pass


SHOP = Shop("main")
SPECIAL = Special("special")
ALIAS_PLAIN = plain
REGISTRY = {"stamped": stamped, "hot": hot}
BOUND_BUY = SPECIAL.buy  # a base-class method reached through a subclass instance


def _functions():
    found = {
        "plain": plain,
        "stamped": stamped,
        "tick": counter,
        "greet": greet.__wrapped__,
        "outer_fn": outer_fn,
        "fragile": fragile,
        "hot": hot,
        "nap": nap,
        "remember": remember,
        "profiled_work": profiled_work,
        "countdown": countdown,
        "helper": helper,
        "fetch": fetch,
        "ticks": ticks,
        "validate": validate,
        "buy": Shop.buy,
        "create": Shop.__dict__["create"].__func__,
        "tax": Shop.__dict__["tax"].__func__,
        "total": Shop.__dict__["total"].fget,
        "order": Shop.order,
        "describe": Shop.describe,
    }
    if instr_reloadable is not None:
        found["version"] = instr_reloadable.version
        found["Reloadable.value"] = instr_reloadable.Reloadable.value
    return found


FUNCTIONS = _functions()
ORIGINAL = {name: func.__code__ for name, func in FUNCTIONS.items()}
TRANSITIONS = {name: [] for name in FUNCTIONS}


def hooks_gone():
    """Names of functions whose code is not their original object (empty: nothing left behind)."""
    changed = [name for name, func in FUNCTIONS.items() if func.__code__ is not ORIGINAL[name]]
    if any(tick.__code__ is not ORIGINAL["tick"] for tick in list(KEPT)):
        changed.append("KEPT closures")
    return sorted(changed)


def state():
    """What the tests check after every command: nothing left behind, nothing broken."""
    return {
        "hooks_gone": hooks_gone(),
        "errors": list(ERRORS),
        "globals": sorted(name for name in globals() if not name.startswith("__")),
        "logger": logger,
        "profiler_intact": PROFILER_INTACT[-1:] == [True] and PROFILE_EVENTS[0] > 0,
        "monitoring": _monitoring_tools(),
        "installed": _agent_hooks(),
    }


def _agent_hooks():
    """What the agent's hook registry holds (an agent that never hooked anything has none)."""
    hooks = sys.modules.get("_flight_profiler.services.hooks")
    return hooks.installed() if hooks is not None else []


def _monitoring_tools():
    monitoring = getattr(sys, "monitoring", None)
    return [] if monitoring is None else [i for i in range(6) if monitoring.get_tool(i) is not None]


def code_is(name, code):
    return FUNCTIONS[name].__code__ is code


def _note(name, text):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _sync_round(i):
    assert ALIAS_PLAIN(i, 3, 4, scale=2, tag="t") == (i + 7) * 2
    assert REGISTRY["stamped"](i)["logger"] == "the app's logger"
    counter(1)
    assert greet("bob") == "hello bob"
    assert outer_fn(i % 5) == (i % 5 + 1) * (i % 5)
    try:
        fragile(i)
    except ValueError:
        pass
    assert list(countdown(3)) == [3, 2, 1]
    KEPT.append(make_counter())
    del KEPT[:-5]
    BOUND_BUY("apple", qty=i % 4)
    nap(1 if i % 2 else 6)
    bag = [i]
    remember(bag)
    bag.append("later")
    assert Special.create(i).name == "shop-%d" % i
    assert Shop.tax(10) == 2.0
    assert SHOP.total >= 0
    assert SPECIAL.describe() == "<special"
    SHOP.order(["ab", "cde"])
    if instr_reloadable is not None:
        instr_reloadable.version()
        instr_reloadable.Reloadable().value(1)


def sync_caller():
    i = 0
    while True:
        i += 1
        try:
            _sync_round(i)
        except Exception as exc:
            ERRORS.append(repr(exc))
            del ERRORS[:-20]
        _note("sync", "")
        sleep(0.01)


async def async_round(i):
    assert await fetch(i) == i * 2 + 1
    assert [x async for x in ticks(3)] == [0, 1, 2]


def async_caller():
    async def main():
        i = 0
        while True:
            i += 1
            try:
                await async_round(i)
            except Exception as exc:
                ERRORS.append(repr(exc))
                del ERRORS[:-20]
            _note("async", "")
            await asyncio.sleep(0.01)

    asyncio.run(main())


def hot_caller(index):
    i = 0
    while True:
        i += 1
        if REGISTRY["hot"](i) != i + 1:
            ERRORS.append("hot broke")
        if i % 20 == 0:
            sleep(0.002)


PROFILE_EVENTS = [0]
PROFILER_INTACT = []


def own_profiler(frame, event, arg):
    PROFILE_EVENTS[0] += 1


def profiled_caller():
    """A thread with its own profile function, which trace must leave in place."""
    sys.setprofile(own_profiler)
    while True:
        profiled_work(50)
        PROFILER_INTACT.append(sys.getprofile() is own_profiler)
        del PROFILER_INTACT[:-5]
        sleep(0.01)


def code_monitor():
    from time import monotonic

    last = dict.fromkeys(FUNCTIONS, True)
    while True:
        for name, func in FUNCTIONS.items():
            own = func.__code__ is ORIGINAL[name]
            if own != last[name]:
                last[name] = own
                TRANSITIONS[name].append((monotonic(), own))
                del TRANSITIONS[name][:-10]
        sleep(0.002)


class Stop(Exception):
    pass


def on_usr1(signum, frame):
    raise Stop()


def main():
    signal.signal(signal.SIGUSR1, on_usr1)
    threading.Thread(target=sync_caller, name="sync-caller", daemon=True).start()
    threading.Thread(target=async_caller, name="async-caller", daemon=True).start()
    for index in range(8):
        threading.Thread(target=hot_caller, args=(index,), name="hot-%d" % index, daemon=True).start()
    threading.Thread(target=code_monitor, name="code-monitor", daemon=True).start()
    threading.Thread(target=profiled_caller, name="profiled-caller", daemon=True).start()
    print("ready", flush=True)
    try:
        while True:
            sleep(3600)
    except Stop:
        os._exit(0 if not ERRORS else 3)


if __name__ == "__main__":
    main()
