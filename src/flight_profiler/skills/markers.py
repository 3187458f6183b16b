"""The machine-readable parts of our SKILL.md files: option tables and runnable examples.

Option tables::

    <!-- options: stack -->
    | option | meaning | default |
    |---|---|---|
    | `pid` | another pid to read | the attached one |
    | `-f FILE`, `--filepath FILE` | also write the stacks to FILE | |
    <!-- /options -->

The first cell names the options (words starting with ``-``) or the positional argument
(anything else) in backticks. Keys are command names (``stack``, ``detach``), the main
program (``flight_profiler``) or a subcommand (``flight_profiler ps``).

Examples::

    <!-- example: {pid} --cmd "stack" --no-color -->
    ```text
    $ flight_profiler <pid> --cmd "stack" --no-color
    (real output, written by tools/gen_skill_examples.py)
    ```
    <!-- /example -->

The marker holds the argv after ``flight_profiler``; ``{pid}`` is the demo service's pid,
``{demo}`` its source file, ``{prefork}`` the master of a pre-fork server started as
``gunicorn`` (tests/targets/ps_prefork.py), ``{tmp}`` a scratch directory. ``example fails:`` marks an
example whose point is the error it shows; ``example needs=gil-symbols:`` one that only runs
against an interpreter that keeps its symbols (gilstat), ``needs=torch`` one that runs against
``{torch}``, a small PyTorch model (tests/targets/prof_torch_target.py).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from typing import Any, NamedTuple

_OPTIONS = re.compile(r"<!-- options: (?P<key>[^>]+?) -->\n(?P<body>.*?)<!-- /options -->", re.S)
_EXAMPLE = re.compile(
    r"<!-- example(?P<fails> fails)?(?: needs=(?P<needs>[\w-]+))?: (?P<args>.+?) -->\n(?P<body>.*?)<!-- /example -->",
    re.S,
)
_CODE = re.compile(r"`([^`]+)`")
EXAMPLE_TIMEOUT = 90.0


class Example(NamedTuple):
    args: str  # as in the marker, with the placeholders
    fails: bool
    needs: str  # what the target must offer for the example to run ("gil-symbols"), or ""
    body: str  # what is stored between the markers
    start: int  # where the body starts in the file's text
    end: int

    @property
    def is_json(self) -> bool:
        return "--json" in shlex.split(self.args)

    def stored_output(self) -> str:
        """The output lines stored in the body (without the fence and the ``$`` line)."""
        lines = self.body.strip("\n").splitlines()
        return "\n".join(line for line in lines[2:-1])


class Substitutions(NamedTuple):
    """Placeholder values: pids of the running examples' targets and paths."""

    values: dict[str, str]  # "pid", "prefork", "torch" (pids); "demo", "tmp" (paths)

    def apply(self, args: str) -> str:
        for name, value in self.values.items():
            args = args.replace("{%s}" % name, value)
        return args

    def shown(self, args: str) -> str:
        """How the command appears in the skill: placeholders for pids, real paths."""
        pids = {"{pid}": "<pid>", "{prefork}": "<master-pid>", "{torch}": "<pid>"}
        for placeholder, shown in pids.items():
            args = args.replace(placeholder, shown)
        return self.apply(args)


def option_tables(text: str) -> dict[str, set[str]]:
    """Documented names per key: option strings and positional names."""
    tables: dict[str, set[str]] = {}
    for key, rows in option_rows(text).items():
        names = tables.setdefault(key, set())
        for row_names, _ in rows:
            names.update(row_names)
    return tables


def option_rows(text: str) -> dict[str, list[tuple[set[str], str]]]:
    """Per key, each table row's names and its last cell (the default)."""
    tables: dict[str, list[tuple[set[str], str]]] = {}
    for match in _OPTIONS.finditer(text):
        rows = tables.setdefault(match.group("key").strip(), [])
        for row in match.group("body").splitlines():
            cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
            if not row.strip().startswith("|") or not cells or set(cells[0]) <= set("-: "):
                continue
            if cells[0] == "option":
                continue  # the header
            rows.append((_names(cells[0]), cells[-1]))
    return tables


def _names(cell: str) -> set[str]:
    names = set()
    for code in _CODE.findall(cell):
        if code.startswith("-"):
            names.add(code.split()[0].rstrip(","))
        else:
            names.add(code.strip())
    return names


def examples(text: str) -> list[Example]:
    return [
        Example(
            args=match.group("args").strip(),
            fails=bool(match.group("fails")),
            needs=match.group("needs") or "",
            body=match.group("body"),
            start=match.start("body"),
            end=match.end("body"),
        )
        for match in _EXAMPLE.finditer(text)
    ]


def run_example(
    example: Example, subs: Substitutions, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """Run the example's command line for real; ``NO_COLOR`` so text output has no escapes."""
    argv = [python, "-m", "flight_profiler", *shlex.split(subs.apply(example.args))]
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100")
    return subprocess.run(argv, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, env=env, check=False)


def body_for(example: Example, subs: Substitutions, output: str) -> str:
    """The text stored between an example's markers."""
    lines = "\n".join(line.rstrip() for line in output.rstrip("\n").splitlines())  # rich pads tables
    return "```text\n$ flight_profiler %s\n%s\n```\n" % (subs.shown(example.args), lines)


def with_bodies(text: str, bodies: list[str]) -> str:
    """``text`` with each example's body replaced, in order."""
    found = examples(text)
    if len(found) != len(bodies):
        raise ValueError("%d examples but %d bodies" % (len(found), len(bodies)))
    out = []
    position = 0
    for example, body in zip(found, bodies):
        out.append(text[position : example.start])
        out.append(body)
        position = example.end
    out.append(text[position:])
    return "".join(out)


def json_records(output: str) -> list[dict[str, Any]]:
    """The JSON lines of an output (other lines, e.g. notes, are skipped)."""
    import json

    records = []
    for line in output.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records
