"""A global whose __repr__ blocks in C (a lock nobody releases) until SIGUSR1; prints "ready", and
"in repr" each time the __repr__ starts."""

import signal
import threading
import time

GATE = threading.Lock()
GATE.acquire()


class Hang:
    def __repr__(self):
        print("in repr", flush=True)
        GATE.acquire()  # in C: no stop of ours can end it; only SIGUSR1's handler lets it go
        GATE.release()
        return "released"


OBJ = Hang()


def release(signum, frame):
    GATE.release()


signal.signal(signal.SIGUSR1, release)
print("ready", flush=True)
while True:
    time.sleep(0.2)
