"""``module [class] name`` positional arguments shared by several commands (client side)."""

from __future__ import annotations

import argparse

from ..errors import UsageError


def add_location_arguments(parser: argparse.ArgumentParser, last: str) -> None:
    parser.add_argument("module", help="module as imported in the target, e.g. __main__ or pkg.mod")
    parser.add_argument("names", nargs="+", metavar="[class] %s" % last, help="optional class, then the %s" % last)


def location(ns: argparse.Namespace, last: str) -> tuple[str, str | None, str]:
    names: list[str] = ns.names
    if len(names) > 2:
        raise UsageError("expected: module [class] %s, got %d names after the module" % (last, len(names)))
    check_names([ns.module, *names])
    if len(names) == 2:
        return ns.module, names[0], names[1]
    cls, name = owner_and_name(None, names[0])
    return ns.module, cls, name


def owner_and_name(cls: str | None, name: str) -> tuple[str | None, str]:
    """``Class.method`` typed in the method's place, as Python names it (``watch threading
    Event.set``), is ``Class method``: it was looked up as one attribute and not found."""
    if cls is None and name.count(".") == 1:
        owner, _, attr = name.partition(".")
        if owner.isidentifier() and attr.isidentifier():
            return owner, attr
    return cls, name


def check_names(words: list[str]) -> None:
    """An empty name (``''``) is a typing slip, never a module, class or function: as a module it
    read as "no module" (``stack '' f`` printed every thread's stack instead of its callers)."""
    for word in words:
        if not word.strip():
            raise UsageError("a module, class or function name must not be empty, got %r" % word)
