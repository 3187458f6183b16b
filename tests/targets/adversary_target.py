"""A target that fights every command: lying and raising dunders, huge and deep and recursive data,
names with terminal escapes and lone surrogates, short-lived threads, loggers with hostile names.

Usage: adversary_target.py [big] [asyncio]
big: also a 1e6-item list and dict, a 64 MiB string and a 50 MiB repr (about 250 MB more);
asyncio: import asyncio (no task runs), so that stack -a looks through the heap.
Prints "ready" when ready; SIGUSR1 releases every C-level block (GATE) and exits 0;
SIGUSR2 forks (the parent prints "forked <pid>"). Stdlib only; 3.8+.
"""

import abc
import logging
import os
import signal
import sys
import threading
import time
import types

if "asyncio" in sys.argv[1:]:
    import asyncio  # noqa: F401

NAME_ESC = "\x1b]0;pwned\x07\x1b[2J\r\u202e"  # OSC title, clear screen, CR, BiDi
ESC = NAME_ESC + "\udcff"  # and a lone surrogate, where the interpreter allows one (not in type names)

GATE = threading.Lock()
GATE.acquire()


class RaisingRepr:
    def __repr__(self):
        raise RuntimeError("repr " + ESC)

    __str__ = __repr__


class CBlockingRepr:
    def __repr__(self):
        GATE.acquire()  # in C: only SIGUSR1 lets it go
        GATE.release()
        return "released"


class PyBlockingRepr:
    def __repr__(self):
        while True:
            pass


class HugeRepr:
    def __repr__(self):
        return "x" * (50 * 1024 * 1024 if BIG else 100000)


class NonStrRepr:
    def __repr__(self):
        return 42  # type: ignore[return-value]


class Liar:
    """Every introspection hook lies or raises."""

    def __len__(self):
        return 10**9

    def __iter__(self):
        raise RuntimeError("iter " + ESC)

    def __getattr__(self, name):
        raise RuntimeError("getattr " + name + ESC)

    @property
    def __class__(self):  # type: ignore[override]
        raise RuntimeError("class " + ESC)

    @property
    def __dict__(self):  # type: ignore[override]
        raise RuntimeError("dict " + ESC)

    def __repr__(self):
        return "<Liar " + ESC + ">"


class EndlessGetattr:
    """Every attribute exists and is another EndlessGetattr."""

    def __getattr__(self, name):
        return EndlessGetattr()


class LyingList(list):
    def __len__(self):
        return -1


class EvilName:
    pass


EvilName.__name__ = EvilName.__qualname__ = "Evil" + NAME_ESC
EVIL_MODULE_CLASS = type("Lying", (), {"__module__": "mod" + NAME_ESC})
setattr(EvilName, "meth" + ESC, lambda self: None)


def _make_deep(depth):
    root = []
    node = root
    for _ in range(depth):
        child = []
        node.append(child)
        node = child
    return root


RAISING = RaisingRepr()
CBLOCK = CBlockingRepr()
PYBLOCK = PyBlockingRepr()
HUGE_REPR = HugeRepr()
NONSTR = NonStrRepr()
LIAR = Liar()
ENDLESS = EndlessGetattr()
LYING_LIST = LyingList([1, 2, 3])
BIG = "big" in sys.argv[1:]
BIG_LIST = list(range(1000000 if BIG else 1000))
BIG_DICT = {i: str(i) for i in range(1000000 if BIG else 1000)}
BIG_STR = "y" * (64 * 1024 * 1024 if BIG else 1024)
DEEP = _make_deep(100000)
RECURSIVE_LIST = []
RECURSIVE_LIST.append(RECURSIVE_LIST)
RECURSIVE_DICT = {}
RECURSIVE_DICT["self"] = RECURSIVE_DICT
MIXED = {"raising": RAISING, "liar": LIAR, "nonstr": NONSTR, ESC: ESC, "rec": RECURSIVE_LIST}
EVIL_TEXT = "text" + ESC

# a module with a hostile name, and a non-module in sys.modules whose every attribute raises
EVIL_MOD = types.ModuleType("evilmod" + ESC)
EVIL_MOD.EvilName = EvilName
EVIL_MOD.value = EVIL_TEXT
sys.modules["evilmod" + ESC] = EVIL_MOD
sys.modules["lazymod"] = Liar()  # type: ignore[assignment]


class _FakeModule(types.ModuleType):
    def __getattr__(self, name):  # PEP 562-like, but blocks in Python
        while True:
            time.sleep(0.01)


sys.modules["blockmod"] = _FakeModule("blockmod")


class BlockMeta(type):
    def __getattr__(cls, name):  # a missing class attribute: blocks in Python
        while True:
            time.sleep(0.01)


class Blocked(metaclass=BlockMeta):
    pass


# modules whose missing names run the program's code: what ran is recorded in LAZY_RAN
LAZY_RAN = []


class _LazyLoaded:  # a loader for importlib.util.LazyLoader: its exec_module is the "import"
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        LAZY_RAN.append("import of " + module.__name__)
        module.Thing = type("Thing", (), {})
        module.value = 1


def _lazy_module(name):
    import importlib.util

    loader = importlib.util.LazyLoader(_LazyLoaded())
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    sys.modules[name] = module
    loader.exec_module(module)  # nothing runs until the module's first attribute read


_lazy_module("lazyloaded")


class _LazyPackage(types.ModuleType):  # transformers' and lazy_loader's shape: submodules on first use
    def __getattr__(self, name):
        LAZY_RAN.append("getattr " + name)
        raise AttributeError(name)


sys.modules["lazypkg"] = _LazyPackage("lazypkg")


def _forever(self):
    while True:  # in Python, but reached where no budget was set: it held the session's thread for good
        time.sleep(0.01)


# a module subclass whose __name__ and __dict__ are properties that never return, and a metaclass
# that shadows __name__, __mro__, __dict__ and __module__ the same way (CPython itself reads its own slots)
class _ShadowModule(types.ModuleType):
    __name__ = property(_forever)  # type: ignore[assignment]
    __dict__ = property(_forever)  # type: ignore[assignment]


_shadow = _ShadowModule("shadowmod")
_shadow.VALUE = 42
sys.modules["shadowmod"] = _shadow


class ShadowMeta(type):
    __name__ = property(_forever)  # type: ignore[assignment]
    __mro__ = property(_forever)  # type: ignore[assignment]
    __dict__ = property(_forever)  # type: ignore[assignment]
    __module__ = property(_forever)  # type: ignore[assignment]


Shadowed = ShadowMeta("Shadowed", (), {"attr": 7})
SHADOWED = Shadowed()


class Hooked(abc.ABC):  # noqa: B024 - no abstract method: only the hook matters
    """An ABC whose __subclasshook__ never returns: vmtool asked it for every type of the heap."""

    @classmethod
    def __subclasshook__(cls, other):
        while True:
            time.sleep(0.01)


class RealHooked(Hooked):
    pass


HOOKED = RealHooked()

# names of megabytes: a class, a function and a method, each under that name in its namespace (a
# result that carried them whole passed the protocol's 4 MB line, and the session was dropped)
HUGE_CLASS_NAME = "Huge" + "C" * 5000000
HUGE_FUNC_NAME = "HugeF" + "F" * 5000000


def _huge_function():
    return 1


_huge_function.__name__ = _huge_function.__qualname__ = HUGE_FUNC_NAME
globals()[HUGE_FUNC_NAME] = _huge_function
globals()[HUGE_CLASS_NAME] = type(HUGE_CLASS_NAME, (), {"m" * 2000000: lambda self: None})
HUGE_INSTANCE = globals()[HUGE_CLASS_NAME]()

# a module whose __file__ is a FIFO nobody writes to (reading it would block forever)
FIFO = "/tmp/adversary-fifo-%d.py" % os.getpid()
for _stale in os.listdir("/tmp"):  # those of killed targets (a SIGKILL runs no cleanup)
    if _stale.startswith("adversary-fifo-") and not os.path.exists("/proc/" + _stale[15:-3]):
        try:
            os.unlink("/tmp/" + _stale)
        except OSError:
            pass
try:
    os.mkfifo(FIFO)
except OSError:
    pass
FIFO_MOD = types.ModuleType("fifomod")
FIFO_MOD.__file__ = FIFO
exec(compile("def f():\n    return 1\n", FIFO, "exec"), FIFO_MOD.__dict__)
sys.modules["fifomod"] = FIFO_MOD
ZERO_MOD = types.ModuleType("zeromod")
ZERO_MOD.__file__ = "/dev/zero"
exec(compile("def f():\n    return 1\n", "/dev/zero", "exec"), ZERO_MOD.__dict__)
sys.modules["zeromod"] = ZERO_MOD

# loggers with hostile names, levels and handlers
logging.addLevelName(25, "NOTICE" + ESC)
EVIL_LOGGER = logging.getLogger("app" + ESC)
EVIL_LOGGER.setLevel(25)


class HostileHandler(logging.Handler):
    def __repr__(self):
        raise RuntimeError("handler " + ESC)

    def emit(self, record):
        pass


EVIL_LOGGER.addHandler(HostileHandler())


class _NamedStream:
    name = ESC

    def write(self, text):
        pass

    def flush(self):
        pass


_fh = logging.StreamHandler(_NamedStream())
logging.getLogger("app").addHandler(_fh)

LOOPING = []  # a test appends to it (getglobal -e): then the handler below loops where logger reads it


class LoopingHandler(logging.Handler):
    @property
    def stream(self):
        while LOOPING:
            time.sleep(0.01)

    def emit(self, record):
        pass


logging.getLogger("app.looping").addHandler(LoopingHandler())
logging.getLogger("plain").setLevel(logging.INFO)


# functions called all the time, with hostile arguments, raising hostile exceptions
def work(arg, other=None):
    total = 0
    for i in range(3):
        total += i
    return arg


def boom(arg):
    raise ValueError("bad " + ESC)


class Service:
    def handle(self, arg):
        local_evil = EVIL_TEXT  # noqa: F841
        return work(arg)


SERVICE = Service()


def _caller():
    args = [RAISING, LIAR, NONSTR, LYING_LIST, RECURSIVE_LIST, ENDLESS, EVIL_TEXT]
    i = 0
    while True:
        arg = args[i % len(args)]
        i += 1
        SERVICE.handle(arg)
        try:
            boom(arg)
        except ValueError:
            pass
        time.sleep(0.005)


def _short():
    time.sleep(0.001)


def _churn():
    # threads that start and exit all the time, with hostile names
    n = 0
    while True:
        n += 1
        t = threading.Thread(target=_short, name="churn%d%s" % (n, ESC), daemon=True)
        t.start()
        t.join()


def _lock_holder():
    with GATE2:
        while True:
            time.sleep(0.1)


GATE2 = threading.Lock()


def _lock_waiter():
    with GATE2:
        pass


def release(signum, frame):
    try:
        GATE.release()
    except RuntimeError:
        pass
    try:
        os.unlink(FIFO)
    except OSError:
        pass
    os._exit(0)


def fork(signum, frame):
    # SIGUSR2: fork; the child goes on with the same loop (the agent's threads, if any, stay behind)
    child = os.fork()
    if child:
        print("forked %d" % child, flush=True)


signal.signal(signal.SIGUSR1, release)
signal.signal(signal.SIGUSR2, fork)
threading.Thread(target=_caller, name="caller" + ESC, daemon=True).start()
threading.Thread(target=_churn, name="churner", daemon=True).start()
threading.Thread(target=_lock_holder, name="holder" + ESC, daemon=True).start()
time.sleep(0.05)
threading.Thread(target=_lock_waiter, name="waiter" + ESC, daemon=True).start()
print("ready", flush=True)
try:
    while True:
        time.sleep(0.2)
finally:
    try:
        os.unlink(FIFO)
    except OSError:
        pass
