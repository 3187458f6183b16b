"""``complete``: internal command the shell uses for Tab completion (not listed in help)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..spec import CommandSpec

if TYPE_CHECKING:
    from .model import CompleteRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("module", "member"))
    parser.add_argument("prefix", nargs="?", default="")
    parser.add_argument("--module", default="")
    parser.add_argument("--cls")


def _to_request(ns: argparse.Namespace) -> CompleteRequest:
    return {"kind": ns.kind, "prefix": ns.prefix, "module": ns.module, "cls": ns.cls}


SPEC = CommandSpec(
    name="complete",
    summary="Names known to the target, for completion.",
    usage="complete module|member [prefix] [--module M] [--cls C]",
    examples=("complete module json",),
    add_arguments=_add_arguments,
    to_request=_to_request,
    render=lambda event: "\n".join(event["names"]),
    extra={"hidden": True},
)
