"""A target that reports every change of its GIL switch interval (tests/integration/test_attach_threads.py).

    switch_target.py MODE BUSY [IDLE]

BUSY CPU-bound threads, IDLE (default 0) threads waiting on an event; a watcher thread prints ``interval <value>`` on stdout each time
``sys.getswitchinterval()`` differs from what it saw last. MODE ``keep``: only that;
``override``: the first time the watcher sees a value below the starting one (the agent's
start), the app sets its own (0.0123) and prints ``set 0.0123`` - a setting the agent must
leave alone. Prints "ready" when ready; SIGUSR1 makes the main thread exit 0.
Stdlib only; Python 3.8+.
"""

import signal
import sys
import threading
import time

APP_OWN = 0.0123


class Wake(Exception):
    pass


def on_usr1(signum, frame):
    raise Wake()


def spin():
    counter = 0
    while True:
        counter += 1


def watch(mode):
    start = seen = sys.getswitchinterval()
    overridden = False
    while True:
        now = sys.getswitchinterval()
        if now != seen:
            print("interval %r" % now, flush=True)
            seen = now
            if mode == "override" and not overridden and now < start:
                sys.setswitchinterval(APP_OWN)
                overridden = True
                seen = sys.getswitchinterval()
                print("set %r" % seen, flush=True)
        time.sleep(0.0002)


def main():
    mode, busy = sys.argv[1], int(sys.argv[2])
    idle = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    signal.signal(signal.SIGUSR1, on_usr1)
    for index in range(busy):
        threading.Thread(target=spin, name="busy-%d" % index, daemon=True).start()
    for index in range(idle):
        threading.Thread(target=threading.Event().wait, name="idle-%d" % index, daemon=True).start()
    threading.Thread(target=watch, args=(mode,), name="watcher", daemon=True).start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except Wake:
        print("woke %r" % sys.getswitchinterval(), flush=True)
        sys.exit(0)


if __name__ == "__main__":
    main()
