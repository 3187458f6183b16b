"""``sm`` in the CLI: search loaded functions and methods (the arguments and rendering of ``sc``)."""

from __future__ import annotations

import argparse

from ..sc.client import add_search_arguments, render_matches, search_request
from ..spec import CommandSpec


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_search_arguments(parser, "Class.method")


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = ("PATTERN [-d] [-n]",)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    (
        "pattern",
        "glob over `module.function` / `module.Class.method` (without a dot, over the bare name too), or a plain name "
        "matched at the end or naming a class or module (`sm Inventory`: its methods, as Arthas's `sm CLASS`)",
    ),
    ("-d", "also the file, the line and the signature (defaults shown when they are plain literals)"),
    ("-n", "show at most N matches; the others are counted"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = ("PATTERN [-d] [-n]",)
OVERVIEW = (
    "loaded functions and methods whose `module.Class.method` name matches a glob (or ends with a plain name, or "
    "is defined by the class or module it names); `-d`: file, line, signature. Nothing is imported, no target code "
    "runs; no match is an error"
)


SPEC = CommandSpec(
    name="sm",
    summary="Search the loaded functions and methods by name (nothing is imported); -d adds file, line and signature.",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=("sm *charge*", "sm Inventory", "sm Inventory.reserve -d", "sm '__main__.*' -n 100"),
    add_arguments=_add_arguments,
    to_request=search_request,
    render=render_matches,
)
