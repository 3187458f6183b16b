"""An application for the pre-armed agent tests (flight_profiler.arm), Python 3.8+.

Usage: armed_app.py MODE [ARGS...]
  report   prints what an application can see of its own start (argv, path[0], __main__,
           hooks, signal handlers, threads, our public modules), then exits 7
  boom     raises ValueError at module level (uncaught)
  wait     prints "ready PID" and sleeps; with "nodump" it first makes itself non-dumpable
           (prctl PR_SET_DUMPABLE 0: only root with CAP_SYS_PTRACE may ptrace or read it)
  import   ``import flight_profiler.arm`` (armed when FLIGHT_PROFILER_ARM=1), then as wait
"""

import json
import os
import signal
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "report"
BEAT = [0]


def report():
    print(
        json.dumps(
            {
                "argv": sys.argv,
                "path0": sys.path[0],
                "file": __file__,
                "main_is_us": sys.modules["__main__"].__dict__ is globals(),
                "name": __name__,
                "spec": repr(globals().get("__spec__")),
                "excepthook": sys.excepthook is sys.__excepthook__,
                "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
                "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
                "ours": sorted(n for n in sys.modules if "flight_profiler" in n and not n.startswith("_flight_")),
            }
        ),
        flush=True,
    )


if MODE == "import":
    import flight_profiler.arm  # noqa: F401 - arms the process when FLIGHT_PROFILER_ARM=1

if MODE == "report":
    time.sleep(0.3)  # the agent thread has loaded and listens by now (it must not matter: printed as seen)
    report()
    sys.exit(7)
elif MODE == "boom":
    raise ValueError("boom")
else:
    if "nodump" in sys.argv[2:]:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    print("ready %d" % os.getpid(), flush=True)
    while True:
        BEAT[0] += 1
        time.sleep(0.05)
