"""``complete``: internal command the shell uses for Tab completion (not listed in help)."""

from __future__ import annotations

import argparse

from ..spec import CommandSpec

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from .model import CompleteRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("module", "member"))
    parser.add_argument("prefix", nargs="?", default="")
    parser.add_argument("--module", default="")
    parser.add_argument("--cls")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("module|member [prefix] [--module] [--cls]",)


def _to_request(ns: argparse.Namespace) -> CompleteRequest:
    return {"kind": ns.kind, "prefix": ns.prefix, "module": ns.module, "cls": ns.cls}


SPEC = CommandSpec(
    name="complete",
    summary="Names known to the target, for completion.",
    forms=USAGE_FORMS,
    examples=("complete module json",),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=lambda event: "\n".join(event["names"]),
    extra={"hidden": True},
)
