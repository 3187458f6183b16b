"""Message kinds and their required fields (runs on both sides).

client -> agent:
  hello    {protocol, pid?, pidns?}        first message of every connection; pid and pid namespace
                                           let the agent compare the claimed pid with SO_PEERCRED
  run      {job, command, request}         start a command; request is a JSON object
  cancel   {job}                           stop a running command (Ctrl-C)
  detach   {}                              remove everything the agent put in the target
agent -> client:
  hello    {protocol, pid, python, agent_version, executable}
  event    {job, data}                     one structured result of a job
  end      {job, status, error?}           status is "ok", "error" or "cancelled"
  error    {error}                         a connection-level refusal (bad hello, ...)
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple


REQUIRED: Dict[str, Tuple[str, ...]] = {
    "hello": ("protocol",),
    "run": ("job", "command", "request"),
    "cancel": ("job",),
    "detach": (),
    "event": ("job", "data"),
    "end": ("job", "status"),
    "error": ("error",),
}

END_OK = "ok"
END_ERROR = "error"
END_CANCELLED = "cancelled"


def validate(msg: Dict[str, Any]) -> str:
    """Return an error text for a malformed message, or "" when it is well formed."""
    kind = msg.get("type")
    fields = REQUIRED.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return "unknown message type %r" % (kind,)
    missing = [name for name in fields if name not in msg]
    if missing:
        return "message %r lacks %s" % (kind, ", ".join(missing))
    return ""
