"""The only code-in-a-string: what the injector runs in the target's thread.

It must be tiny, exception-proof and quick: it runs at a safe point of a thread
we interrupted (possibly the main thread, where a signal arriving meanwhile
would be swallowed). It only starts the agent thread and returns. It binds no
name in ``__main__`` (it runs inside ``exec`` with a namespace of its own) and
never lets an exception out (a pending call returning -1 kills the target).
The agent thread then loads our modules from the bundle file under a private
alias (see ``agent/loader``), so it neither needs nor shadows anything on the
target's ``sys.path``. Run twice (a queued pending call that fires late), it
finds the agent running and does nothing.
"""

from __future__ import annotations

import os

ALIAS = "_flight_profiler"

_BODY = """
import sys, threading
def _fp_agent():
    try:
        import time
        if time.time() > %(deadline)r:
            return  # the client gave up on us and told the user so: leave the target as it was
        alias = %(alias)r
        if alias not in sys.modules:
            with open(%(bundle)r) as fh:
                bundle = eval(compile(fh.read(), %(bundle)r, "eval"), {"__builtins__": {}})
            filename, source, _ = bundle[alias + ".agent.loader"]
            loader = {"__name__": alias + "_bootstrap_loader"}
            exec(compile(source, filename, "exec"), loader)
            loader["install"](bundle, alias, %(key)r)
        __import__(alias + ".agent.server")
        sys.modules[alias + ".agent.server"].serve(%(sock)r, %(key)r)
    except BaseException:
        try:
            import traceback
            with open(%(log)r, "a") as fh:
                traceback.print_exc(file=fh)
        except BaseException:
            pass
try:
    threading.Thread(target=_fp_agent, name="flight_profiler-agent", daemon=True).start()
except BaseException:
    pass
"""


def package_dir() -> str:
    """Our installed package, from which the bundle is made."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundle_path(socket_path: str) -> str:
    return socket_path[: -len(".sock")] + ".bundle"


def source(socket_path: str, deadline: float) -> str:
    """One expression statement: runs the body in a throwaway namespace, binds nothing in ``__main__``.

    ``deadline`` (``time.time()``) is when the client stops waiting: an agent thread
    that only gets to run after it (a pending call that fired late, a GIL that was
    held) does nothing.
    """
    text = _BODY % {
        "deadline": deadline,
        "alias": ALIAS,
        "bundle": bundle_path(socket_path),
        "key": "<flight_profiler bundle %s>" % socket_path,
        "sock": socket_path,
        "log": socket_path + ".log",
    }
    return "exec(%r, {'__name__': '_flight_profiler_boot'})" % text
