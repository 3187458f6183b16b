"""The only code-in-a-string: what the injector runs in the target's thread.

It must be tiny, exception-proof and quick: it runs at a safe point of a thread
we interrupted (possibly the main thread, where a signal arriving meanwhile
would be swallowed). It only starts the agent thread and returns. It binds no
name in ``__main__`` (it runs inside ``exec`` with a namespace of its own), never
lets an exception out (a pending call returning -1 kills the target), and loads
our package under a private alias so it neither needs nor shadows anything on
the target's ``sys.path``.
"""

from __future__ import annotations

import os

ALIAS = "_flight_profiler"

_BODY = """
import sys, threading
def _fp_agent():
    try:
        alias = %(alias)r
        pkg = sys.modules.get(alias)
        if pkg is None:
            import importlib.util
            spec = importlib.util.spec_from_file_location(
                alias, %(init)r, submodule_search_locations=[%(pkgdir)r])
            pkg = importlib.util.module_from_spec(spec)
            sys.modules[alias] = pkg
            spec.loader.exec_module(pkg)
        import importlib
        importlib.import_module(alias + ".agent.server").serve(%(sock)r)
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
    """Our installed package, from which the agent is loaded."""
    return os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]


def body(socket_path: str, pkg_dir: str) -> str:
    """The statements the target runs (wrap with ``source``)."""
    return _BODY % {
        "alias": ALIAS,
        "init": os.path.join(pkg_dir, "__init__.py"),
        "pkgdir": pkg_dir,
        "sock": socket_path,
        "log": socket_path + ".log",
    }


def source(socket_path: str, pkg_dir: str) -> str:
    """One expression statement: runs ``body`` in a throwaway namespace, binds nothing in ``__main__``."""
    text = body(socket_path, pkg_dir)
    return "exec(%r, {'__name__': '_flight_profiler_boot'})" % text
