"""The skills' option tables, written from the commands' declarations.

Each ``<!-- options: NAME -->`` block whose NAME is a command holds what ``commands.surface.option_table``
renders from that command's parser and its ``SPEC.option_docs``: edit those, then run
``python -m flight_profiler.skills.tables`` (``--check`` only reports the blocks that differ).
tests/unit/test_surfaces.py fails when a stored table is not the rendered one, so a hand edit of a
table is caught. Blocks of what is not a command (``flight_profiler``, ``flight_profiler ps``,
``detach``) stay hand-written.
"""

from __future__ import annotations

import re
import sys

from ..cli import registry
from ..commands.surface import option_table
from . import Skill, skills
from .markers import _OPTIONS


def rendered(skill: Skill) -> str:
    """``skill``'s text with every command's options block replaced by the rendered table."""

    def table(match: re.Match[str]) -> str:
        spec = registry.get(match.group("key").strip())
        if spec is None or not spec.option_docs:
            return match.group(0)
        return "<!-- options: %s -->\n%s<!-- /options -->" % (spec.name, option_table(spec))

    return _OPTIONS.sub(table, skill.text)


def stale() -> list[Skill]:
    """The skills whose stored tables are not what their commands render."""
    return [skill for skill in skills() if rendered(skill) != skill.text]


def main(argv: list[str]) -> int:
    found = stale()
    for skill in found:
        if "--check" in argv:
            print("stale option table: %s" % skill.path)
            continue
        with open(skill.path, "w", encoding="utf-8") as fh:
            fh.write(rendered(skill))
        print("wrote %s" % skill.path)
    return 1 if found and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
