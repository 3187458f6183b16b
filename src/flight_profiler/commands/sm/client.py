"""``sm`` in the CLI: search loaded functions and methods (the arguments and rendering of ``sc``)."""

from __future__ import annotations

import argparse

from ..sc.client import add_search_arguments, render_matches, search_request
from ..spec import CommandSpec


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_search_arguments(parser, "Class.method")


SPEC = CommandSpec(
    name="sm",
    summary="Search the loaded functions and methods by name (nothing is imported); -d adds file, line and signature.",
    usage="sm PATTERN [-d] [-n N]",
    examples=("sm *charge*", "sm Inventory.reserve -d", "sm '__main__.*' -n 100"),
    add_arguments=_add_arguments,
    to_request=search_request,
    render=render_matches,
)
