"""Objects kept alive in known ways, for ``vmtool -a referenceAnalyze`` (tests/integration/test_reference_analyze.py).

- ``Leak``: held by a module-level dict, ``CACHE['k'][3]`` (the leak the issue names);
- ``Tracked``: by a class attribute, ``Registry.entries[0]``;
- ``Job``: only by a worker thread's local variable ``pending``;
- ``Node``: two of them in a cycle, one held by the global ``RING``;
- ``Hostile``: the key of a dict under a global whose ``__hash__``/``__eq__``/``__repr__``
  count their calls in ``CALLS`` (the search must never run them);
- ``Never``: a class without instances.
Prints "ready PID" once all exist and a full collection moved them out of the young generations.
"""

import gc
import os
import threading
import time

CALLS = [0]


class Leak:
    pass


class Tracked:
    pass


class Job:
    pass


class Never:
    pass


class Node:
    def __init__(self):
        self.peer = None


class Hostile:
    def __hash__(self):
        CALLS[0] += 1
        return 1

    def __eq__(self, other):
        CALLS[0] += 1
        return self is other

    def __repr__(self):
        CALLS[0] += 1
        return "Hostile()"

    def __getattr__(self, name):
        CALLS[0] += 1
        raise AttributeError(name)


class Registry:
    entries = [Tracked()]


CACHE = {"k": [0, 1, 2, Leak()]}
_a, _b = Node(), Node()
_a.peer, _b.peer = _b, _a
RING = [_a]
del _a, _b
HOSTILE_KEYED = {Hostile(): [Hostile()]}
CALLS[0] = 0  # building the dict hashed its key


def worker(started):
    pending = [Job()]
    started.set()
    while pending:
        time.sleep(0.5)


started = threading.Event()
threading.Thread(target=worker, args=(started,), name="jobs", daemon=True).start()
started.wait()
gc.collect()
print("ready %d" % os.getpid(), flush=True)
while True:
    time.sleep(0.05)
