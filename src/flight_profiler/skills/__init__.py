"""Skill files for AI coding agents: one folder per skill with a SKILL.md (package data).

``flight_profiler install-skills`` copies them where agents look for skills; the
tests check that together they document every command and option, and that their
examples still run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    path: str  # the SKILL.md file
    text: str


def skill_files() -> list[str]:
    """Every packaged SKILL.md, by folder name."""
    found = []
    for entry in sorted(os.listdir(HERE)):
        path = os.path.join(HERE, entry, "SKILL.md")
        if os.path.isfile(path):
            found.append(path)
    return found


def load(path: str) -> Skill:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    meta = front_matter(text)
    return Skill(name=meta.get("name", ""), description=meta.get("description", ""), path=path, text=text)


def skills() -> list[Skill]:
    return [load(path) for path in skill_files()]


def front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines between the leading ``---`` fences (flat, our own files only)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    meta: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return meta
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            meta[key.strip()] = value.strip()
    return {}  # no closing fence: not front matter
