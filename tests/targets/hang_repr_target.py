"""A global whose __repr__ blocks in C (a lock nobody releases) until SIGUSR1; prints "ready", and
"in repr" each time the __repr__ starts.

Each call blocks on a lock of its own and SIGUSR1 releases them all: one signal lets every call
blocked so far return (a call that our stop then ends in the __repr__ never releases anything a
later call waits on), and a signal with no call blocked does nothing (a release of an unlocked
lock would raise in the main thread's handler).
"""

import signal
import threading
import time

BLOCKED = []


class Hang:
    def __repr__(self):
        gate = threading.Lock()
        gate.acquire()
        BLOCKED.append(gate)
        print("in repr", flush=True)
        gate.acquire()  # in C: no stop of ours can end it; only SIGUSR1's handler lets it go
        return "released"


OBJ = Hang()


def release(signum, frame):
    for gate in list(BLOCKED):
        if gate.locked():  # only this handler releases them: nothing can unlock it in between
            gate.release()


signal.signal(signal.SIGUSR1, release)
print("ready", flush=True)
while True:
    time.sleep(0.2)
