"""MCP tool arguments generated from the command's own option declaration (its argparse parser).

A tool argument that *is* an option of its command takes its description, bounds and default from
that option: the parser is the one declaration of the command's options, so the MCP schema can
never offer a value the parser refuses, nor name a default the agent does not apply.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field

from ..cli import registry
from ..commands.spec import NumberType


def option_action(command: str, flag: str) -> argparse.Action:
    """The parser's action for ``flag`` of ``command`` (LookupError when there is none)."""
    spec = registry.get(command)
    if spec is None:
        raise LookupError("no command %r" % command)
    for action in spec.parser()._actions:  # argparse keeps no public list of them
        if flag in action.option_strings:
            return action
    raise LookupError("%s has no option %s" % (command, flag))


def option_field(command: str, flag: str, description: str | None = None) -> Any:
    """The pydantic ``Field`` of a tool argument that is ``command``'s option ``flag``: the option's help
    (or ``description``) and its numeric range. The default is the tool's own: ``option_default`` where it is
    the option's, a shorter one where a bounded call needs it (monitor's cycle)."""
    action = option_action(command, flag)
    return Field(description=description or action.help or flag, **bounds(action.type))


def option_default(command: str, flag: str) -> Any:
    """The default of ``command``'s option ``flag`` (the command's ``DEFAULTS`` as its parser offers it)."""
    return option_action(command, flag).default


def bounds(kind: Any) -> dict[str, Any]:
    """``ge``/``gt``/``le`` for a ``number`` option: its range, widened to the special values below it
    (``-x -1``), which the parser checks (a JSON schema has no holes)."""
    if not isinstance(kind, NumberType):
        return {}
    found: dict[str, Any] = {}
    lowest = min(kind.special) if kind.special else None
    if kind.minimum is not None:
        if lowest is not None and lowest < kind.minimum:
            found["ge"] = lowest
        else:
            found["gt" if kind.above else "ge"] = kind.minimum
    if kind.maximum is not None:
        highest = max((*kind.special, kind.maximum))
        found["le"] = highest
    return found
