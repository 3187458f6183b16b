"""What crosses the wire for ``thread`` (both sides)."""

from __future__ import annotations

DEFAULT_INTERVAL_MS = 200  # CPU use is measured over this long: one /proc read before, one after
MAX_INTERVAL_MS = 60000

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, TypedDict

    class ThreadOptions(TypedDict):
        """The fields with a default (``DEFAULTS``)."""

        interval: int  # -i, milliseconds; 0: one snapshot

    class ThreadRequest(ThreadOptions):
        id: Optional[int]  # one thread: native id (or Python ident)
        top: Optional[int]  # -n: the N busiest
        blocking: bool  # -b: the blocking graph (the only form that needs the agent)

    class Node(TypedDict, total=False):
        kind: str  # "thread" or "task"
        id: int  # thread ident, or id() of the task
        tid: Optional[int]  # native thread id
        name: str
        coro: str  # tasks: the coroutine's qualified name

    class Wait(TypedDict, total=False):
        waiter: Node
        on: Dict[str, Any]  # {type, id, repr} of the lock, condition, queue, future, thread ...
        at: Dict[str, Any]  # {file, line, name}: the waiter's frame that waits
        holders: List[Node]
        owner: str  # "recorded" (the runtime keeps the owner), "frame" (a frame
        # inside its with-block, found through gc referrers), "inferred" (frames refer to it) or "unknown"
        note: str


DEFAULTS: ThreadOptions = {"interval": DEFAULT_INTERVAL_MS}
