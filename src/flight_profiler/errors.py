"""Exception hierarchy of the client side.

Only ``cli.main`` turns these into exit codes and one-line messages; everything
below it raises. Each message is written for the user: what went wrong and, where
there is one, the fix.
"""

from __future__ import annotations


class FlightProfilerError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 1


class UsageError(FlightProfilerError):
    """Bad command line or command arguments."""

    exit_code = 2


class TargetError(FlightProfilerError):
    """The pid is dead, not Python, unsupported, or refuses debugging."""

    exit_code = 3


class AttachError(FlightProfilerError):
    """Attaching failed; the target was left as it was."""

    exit_code = 4


class PermissionDeniedError(AttachError):
    """The kernel refused us access to the target (ptrace rules, uid, capabilities)."""


class InjectionError(AttachError):
    """The ptrace injector could not run the bootstrap in the target."""


class ProtocolError(FlightProfilerError):
    """The agent spoke something we do not understand (or the channel broke)."""

    exit_code = 5


class CommandError(FlightProfilerError):
    """A command ran and failed (unknown module, bad expression, ...)."""

    exit_code = 6
