"""Target that records what our agent's threads ask of the OS and the compiler (an audit hook).

Usage: audit_target.py OUT_FILE THREADS [BUSY]
Starts THREADS idle threads and BUSY (default 0) CPU-bound ones, prints "ready", and
waits in Event.wait. Every audit event raised on a thread whose name starts with
``flight_profiler`` is recorded as (event, first argument cut to 200 characters,
time.perf_counter()); SIGUSR1 writes the record as JSON to OUT_FILE. The count of file-system calls, imports and compiles of the agent's
start does not depend on timing, so a test can hold it to a bound: each of those
is a chance to lose the GIL, and with N busy threads each loss costs up to N
switch intervals. Stdlib only; Python 3.8+.
"""

import json
import os
import signal
import sys
import threading
import time

RECORD = []


def hook(event, args):
    thread = threading._active.get(threading.get_ident())  # not current_thread(): no dummy thread for ours
    if thread is None or not thread.name.startswith("flight_profiler"):
        return
    first = args[0] if args else None
    if isinstance(first, bytes):
        first = first.decode("utf-8", "replace")
    if event == "compile":
        first = args[1]  # the file name
    elif event == "import" and len(args) > 2 and args[2] is not None:
        event = "import.find"  # the import system's search of sys.path (an extension's load has no sys.path)
    RECORD.append((event, str(first)[:200], time.perf_counter()))


def spin(go):
    go.wait()
    while True:
        pass


def dump(signum, frame):
    with open(sys.argv[1] + ".part", "w") as fh:
        json.dump(RECORD, fh)
    os.replace(sys.argv[1] + ".part", sys.argv[1])  # the reader never sees half a record


def main():
    signal.signal(signal.SIGUSR1, dump)
    for index in range(int(sys.argv[2])):
        threading.Thread(target=threading.Event().wait, name="idle-%d" % index, daemon=True).start()
    go = threading.Event()  # all spin at once: each start behind N spinning threads would wait N switch intervals
    for index in range(int(sys.argv[3]) if len(sys.argv) > 3 else 0):
        threading.Thread(target=spin, args=(go,), name="busy-%d" % index, daemon=True).start()
    go.set()
    sys.addaudithook(hook)
    print("ready", flush=True)
    threading.Event().wait()


main()
