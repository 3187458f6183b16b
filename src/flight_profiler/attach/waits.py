"""The client's wait for the agent: it ends as soon as its outcome is known (client side).

Polling the socket until a fixed timeout blames the wrong thing and wastes the
user's time. Besides the socket answering, each poll looks at what else can
settle the question: the target exited, the bootstrap refused for lack of file
descriptors (``attach/ticket``), a thread holds the GIL in native code (seen
three times in a row from outside). ``--timeout`` remains the bound for what
cannot be known from outside (a main thread that never reaches a safe point).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import AttachError, ProtocolError
from ..render.safe import safe_line
from . import ticket
from .connection import AgentConnection
from .target import read_file

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # TicketView only documents what mypy checks

GIL_CHECK_EVERY = 1.0
MIN_HANDSHAKE = 0.5
LOG_TAIL = 8192


def target_gone(pid: int) -> bool:
    """Exited, or a zombie: nothing will ever answer."""
    try:
        state = read_file("/proc/%d/stat" % pid).rpartition(b")")[2].split()[:1]
    except OSError:
        return True
    return state == [b"Z"] or state == [b"X"]


class TicketView(Protocol):
    """What the wait needs of the attempt's files; the attacher's helper provides it (``attach/privsep``)."""

    def refused_for_fds(self) -> bool: ...

    def claimed(self) -> bool: ...

    def withdraw(self) -> str: ...

    def log_tail(self, size: int) -> str | None: ...

    def failed(self) -> bool: ...


class AgentWait:
    """One wait for the agent of ``pid``: ``connect(timeout)`` tries the socket once (peer-checked)."""

    def __init__(
        self,
        pid: int,
        connect: Callable[[float], AgentConnection | None],
        tickets: TicketView,
        gil_holder: Callable[[], int | None] = lambda: None,
        gone_note: Callable[[], str] = lambda: "",
    ) -> None:
        self.pid = pid
        self.connect = connect
        self.tickets = tickets
        self.gil_holder = gil_holder
        self.gone_note = gone_note  # what else is known of a target that exited (the OOM killer ran)

    def known_failure(self) -> str | None:
        """Why the agent cannot come, when that is already known."""
        if target_gone(self.pid):
            return "pid %d exited while we waited for the agent%s" % (self.pid, self.gone_note())
        if self.tickets.refused_for_fds():
            from .bootstrap import RESERVED_FDS

            return ticket.no_fds_message(self.pid, RESERVED_FDS)
        if self.tickets.failed():
            # the agent thread ran and stopped (socket() forbidden by a seccomp sandbox, ...): it wrote why;
            # waiting out --timeout twice (a minute) would only delay the same answer
            why = self.agent_error(quiet=True)
            if why is not None:  # (an empty log is being written: the next poll reads it)
                return "the agent failed to start in pid %d: %s" % (self.pid, why)
        return None

    def until(self, deadline: float) -> AgentConnection | None:
        """The agent's connection; None at ``deadline`` or when a thread keeps the GIL in native code.

        Raises AttachError with the reason when the wait can end for a known cause.
        """
        delay = 0.005
        next_check = time.monotonic() + GIL_CHECK_EVERY
        seen: list[int | None] = []
        while time.monotonic() < deadline:
            conn = self.connect(max(MIN_HANDSHAKE, deadline - time.monotonic()))
            if conn is not None:
                return conn
            failure = self.known_failure()
            if failure is not None:
                raise AttachError(failure)
            if time.monotonic() >= next_check:
                seen = [*seen[-2:], self.gil_holder()]
                if len(seen) == 3 and seen[0] is not None and len(set(seen)) == 1:
                    return None
                next_check = time.monotonic() + GIL_CHECK_EVERY
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return None

    def give_up(self, extra: float) -> AgentConnection | None:
        """Withdraw the ticket; if the bootstrap claimed it first, the agent is starting: wait ``extra`` for it."""
        outcome = self.tickets.withdraw()
        if outcome == ticket.NO_FDS:
            from .bootstrap import RESERVED_FDS

            raise AttachError(ticket.no_fds_message(self.pid, RESERVED_FDS))
        if outcome == ticket.WITHDRAWN:
            return None
        conn = self.until(time.monotonic() + extra)
        if conn is not None:
            return conn
        holder = self.gil_holder()
        if holder is not None:
            raise AttachError(
                "the agent could not finish starting: GIL held by thread %d in native code; it answers once "
                "the GIL is released ('detach' then removes it); 'stack' still works" % holder
            )
        raise AttachError(
            "the agent started but did not answer within --timeout (another %g s after the first): %s"
            % (extra, self.agent_error())
        )

    def agent_error(self, quiet: bool = False) -> str | None:
        """The last line the agent wrote to its log (escaped: the target wrote it), or why there is none
        (``quiet``: None instead)."""
        text = self.tickets.log_tail(LOG_TAIL)
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if not lines:
            return None if quiet else "it left no log" if text is None else "its log is empty"
        return safe_line(lines[-1][:300])


def closed_by_agent(exc: ProtocolError) -> bool:
    """The agent closed the connection (it is detaching): none runs there any more."""
    text = str(exc)
    return "peer closed" in text or "reset" in text
