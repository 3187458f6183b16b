"""``module`` in the CLI."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.plain import Plain
from ...render.safe import safe_line
from ..spec import CommandSpec
from ..userpath import user_path

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from .model import ModuleRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filepath", help="source file path (relative paths are taken from your directory)")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("filepath",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (("filepath", "the source file; relative paths are taken from *your* current directory"),)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("<filepath>",)
OVERVIEW = "under which module name a source file is loaded in the target"


def _to_request(ns: argparse.Namespace) -> ModuleRequest:
    if not ns.filepath.strip():  # abspath('') is the current directory: an answer to a question not asked
        raise UsageError("module needs a file path, got %r" % ns.filepath)
    return {"path": user_path(ns.filepath)}


def _render(event: dict[str, Any]) -> Plain:
    if not event["modules"]:
        return Plain("%s is not imported in the target" % safe_line(event["path"]), style="yellow")
    return Plain("%s -> %s" % (safe_line(event["path"]), ", ".join(safe_line(name) for name in event["modules"])))


SPEC = CommandSpec(
    name="module",
    summary="Show the module name under which a source file is loaded in the target.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("module /home/admin/application/compute.py",),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=_render,
    completes=("path",),
)
