"""Parsing the machine-readable parts of SKILL.md files."""

from __future__ import annotations

from flight_profiler.skills import front_matter
from flight_profiler.skills.markers import Substitutions, body_for, examples, option_tables, with_bodies

TEXT = """---
name: flight-profiler-x
description: does x
---

<!-- options: x -->
| option | meaning | default |
|---|---|---|
| `module` | where | |
| `[class] field` | what | |
| `-e EXPR`, `--expr EXPR` | an expression | |
| `-v` | more | off |
<!-- /options -->

<!-- example: {pid} --cmd "x __main__ A" --json -->
old
<!-- /example -->

<!-- example fails: {pid} --cmd "x" --no-color -->
<!-- /example -->
"""


def test_front_matter() -> None:
    assert front_matter(TEXT) == {"name": "flight-profiler-x", "description": "does x"}
    assert front_matter("no front matter") == {}
    assert front_matter("---\nname: x\n") == {}


def test_option_tables() -> None:
    assert option_tables(TEXT) == {"x": {"module", "[class] field", "-e", "--expr", "-v"}}


def test_examples_and_bodies() -> None:
    found = examples(TEXT)
    assert [(e.args, e.fails, e.is_json) for e in found] == [
        ('{pid} --cmd "x __main__ A" --json', False, True),
        ('{pid} --cmd "x" --no-color', True, False),
    ]
    subs = Substitutions({"pid": "42", "tmp": "/t"})
    assert subs.apply(found[0].args) == '42 --cmd "x __main__ A" --json'
    body = body_for(found[0], subs, '{"a": 1}   \n')
    assert body == '```text\n$ flight_profiler <pid> --cmd "x __main__ A" --json\n{"a": 1}\n```\n'
    new = with_bodies(TEXT, [body, body_for(found[1], subs, "error: no")])
    again = examples(new)
    assert again[0].stored_output() == '{"a": 1}' and again[1].stored_output() == "error: no"
    assert with_bodies(new, [e.body for e in again]) == new
