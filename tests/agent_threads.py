"""Run a piece of in-target code on a fresh thread, as the program's or as one of the agent's.

``services.usercode`` treats the two differently (an agent thread's user code is marked with a
budget and stopped by the watchdog; an application thread's is left to the command's Guard), so a
test of a budget must run its code on the kind of thread the target would.
"""

from __future__ import annotations

import threading
from typing import Any, List

from flight_profiler.services.context import AGENT_THREAD_IDS

JOIN = 30.0  # seconds: only reached by a test that is about to fail


def in_thread(fn: Any, agent: bool = False) -> Any:
    """``fn()`` on a fresh thread (an application thread unless ``agent``): what it returned, or
    ``("raised", exc)`` for whatever it raised, BaseExceptions included."""
    out: List[Any] = []

    def body() -> None:
        if agent:
            AGENT_THREAD_IDS.add(threading.get_ident())
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(("raised", exc))
        finally:
            AGENT_THREAD_IDS.discard(threading.get_ident())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(JOIN)
    assert not thread.is_alive(), "the code did not return within %g s" % JOIN
    return out[0]
