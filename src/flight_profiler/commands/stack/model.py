"""What crosses the wire for ``stack`` (both sides): thread stacks (read from outside, or the
asyncio tasks by the agent) and ``stack module [class] method`` (the callers of a function)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Optional, TypedDict, Union

    from ...protocol.requests import TargetRequest

    class StacksRequest(TypedDict):
        pid: Optional[int]  # another process's thread stacks (read from outside)
        filepath: Optional[str]  # write the stacks there too
        native: bool  # --native: C frames too
        asyncio: bool  # -a: the asyncio tasks (the agent answers)
        tasks: int  # -a -n: the places shown at most (TASKS_SHOWN); the tasks at others are counted

    class CallersOptions(TypedDict):
        """The fields of ``stack module [class] method`` with a default (``DEFAULTS``)."""

        limit: int  # -n: calls shown
        rate: float  # call stacks per second at most; the others are counted as skipped

    class CallersRequest(TargetRequest, CallersOptions):
        filter: Optional[str]  # -f over target, args, kwargs

    class AgentStacksRequest(TypedDict):
        """What the client asks an agent already running when py-spy may not read the target."""

        threads: bool  # True: every application thread's Python stack, from inside

    StackRequest = Union[StacksRequest, CallersRequest, AgentStacksRequest]


DEFAULTS: CallersOptions = {"limit": 5, "rate": 20.0}
TASKS_SHOWN = 200  # stack -a: places shown by default (a service may run tens of thousands of tasks)
READ_SECONDS = 2.0  # stack -a: tasks are read at most this long (~20 us each: ~100,000); the rest are counted
