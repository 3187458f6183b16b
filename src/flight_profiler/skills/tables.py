"""The skills' option tables and Usage blocks and README's Commands table, written from the commands' declarations.

Each ``<!-- options: NAME -->`` block whose NAME is a command holds what ``commands.surface.option_table``
renders from that command's parser and its ``SPEC.option_docs``; each ``<!-- usage: NAME... -->`` block the
fenced Usage lines ``surface.skill_usage`` renders from the named commands' ``SPEC.main_forms``; README's
``<!-- commands -->`` block the table ``surface.readme_table`` renders from every visible command's
``main_forms`` and ``overview`` (with the shell's ``help`` and ``detach`` rows below). Edit those, then run
``python -m flight_profiler.skills.tables`` (``--check`` only reports the files that differ).
tests/unit/test_surfaces.py fails when a stored block is not the rendered one, so a hand edit is caught.
Blocks of what is not a command (``flight_profiler``, ``flight_profiler ps``, ``detach``) stay hand-written.
"""

from __future__ import annotations

import io
import os
import re
import sys

from ..cli import registry
from ..commands.surface import option_table, readme_table, skill_usage
from . import HERE, Skill, skills
from .markers import _OPTIONS, Substitutions, body_for, examples, option_tables, with_bodies

_USAGE = re.compile(r"<!-- usage: (?P<names>[^>]+?) -->\n(?P<body>.*?)<!-- /usage -->", re.S)
_COMMANDS = re.compile(r"<!-- commands -->\n(?P<body>.*?)<!-- /commands -->", re.S)
_COMMAND_SKILLS = re.compile(r"<!-- command-skills -->\n(?P<body>.*?)<!-- /command-skills -->", re.S)
# README.md of a source checkout (an installed package has none)
README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "README.md")
# the shell's own commands, around the commands' rows (they have no spec)
README_BEFORE = (
    "| `help [command]` | the commands, or one command's usage, options and examples (generated from the same specs "
    "that parse the arguments) |\n",
)
README_AFTER = ("| `detach` | remove the agent, its threads, socket, files and every hook |\n",)
# the attach skill's command table: the rows of what is not a command, around the commands' rows
SKILLS_HEADER = "| command | skill | what it does |\n|---|---|---|\n"
SKILLS_BEFORE = (
    "| `flight_profiler ps` | flight-profiler-ps | List the Python processes you could attach to, their versions, "
    "and why not. |\n",
)
SKILLS_AFTER = (
    "| `detach` | flight-profiler-detach | Remove the agent and every hook when done. |\n",
    "| `flight_profiler mcp` | flight-profiler-mcp | The same commands, as MCP tools for AI agents. |\n",
)


class UnknownCommand(ValueError):
    """A usage block names something that is not a command."""


def rendered(skill: Skill) -> str:
    """``skill``'s text with every command's options block and every usage block replaced by the rendered one."""
    return rendered_text(skill.text)


def rendered_text(text: str) -> str:
    def table(match: re.Match[str]) -> str:
        spec = registry.get(match.group("key").strip())
        if spec is None or not spec.option_docs:
            return match.group(0)
        return "<!-- options: %s -->\n%s<!-- /options -->" % (spec.name, option_table(spec))

    def usage(match: re.Match[str]) -> str:
        names = match.group("names").split()
        specs = [registry.get(name) for name in names]
        missing = [name for name, spec in zip(names, specs) if spec is None]
        if missing:
            raise UnknownCommand("a usage block names %s, which is not a command" % ", ".join(missing))
        found = [spec for spec in specs if spec is not None]
        return "<!-- usage: %s -->\n%s<!-- /usage -->" % (" ".join(names), skill_usage(found))

    text = _help_examples(_USAGE.sub(usage, _OPTIONS.sub(table, text)))
    if _COMMAND_SKILLS.search(text) is None:
        return text
    body = command_skills_table()
    return _COMMAND_SKILLS.sub(lambda match: "<!-- command-skills -->\n%s<!-- /command-skills -->" % body, text)


def command_skills_table() -> str:
    """The attach skill's command table: each command, the skill holding its options table, its summary."""
    owner = {key: skill.name for skill in skills() for key in option_tables(skill.text)}
    rows = []
    for spec in registry.visible():
        if spec.name not in owner:
            raise UnknownCommand("no skill has an options table for %s" % spec.name)
        rows.append("| `%s` | %s | %s |\n" % (spec.name, owner[spec.name], spec.summary.replace("|", "\\|")))
    return SKILLS_HEADER + "".join((*SKILLS_BEFORE, *rows, *SKILLS_AFTER))


# what tools/gen_skill_examples.py runs examples with (markers.run_example: COLUMNS=100, NO_COLOR)
EXAMPLE_COLUMNS = 100
_HELP = re.compile(r"--cmd (?P<quote>[\"'])help(?P<args>[^\"']*)(?P=quote)")


def _help_examples(text: str) -> str:
    """``text`` with each ``help`` example's body replaced by what ``help`` prints now (it needs no target)."""
    found = examples(text)
    bodies = [example.body for example in found]
    changed = False
    for index, example in enumerate(found):
        match = _HELP.search(example.args)
        if match is None or example.fails:
            continue
        bodies[index] = body_for(example, Substitutions({}), help_output(match.group("args").split()))
        changed = changed or bodies[index] != example.body
    return with_bodies(text, bodies) if changed else text


def help_output(args: list[str]) -> str:
    """What ``flight_profiler PID --cmd "help [command]" --no-color`` prints (cli/runner.py's ``help``)."""
    from ..cli.help import command_help, overview
    from ..cli.runner import ALIASES
    from ..render.console import make_console

    buffer = io.StringIO()
    console = make_console(color=False, file=buffer, width=EXAMPLE_COLUMNS)
    console.print(command_help(ALIASES.get(args[0], args[0])) if args else overview())
    return buffer.getvalue()


def rendered_readme(text: str) -> str:
    """README's text with its ``<!-- commands -->`` block replaced by the rendered Commands table."""
    body = readme_table(registry.visible(), README_BEFORE, README_AFTER)
    return _COMMANDS.sub(lambda match: "<!-- commands -->\n%s<!-- /commands -->" % body, text)


def stale() -> list[tuple[str, str]]:
    """``(path, rendered text)`` of each file whose stored blocks are not what the commands render."""
    found = [(skill.path, rendered(skill)) for skill in skills() if rendered(skill) != skill.text]
    if os.path.isfile(README):
        with open(README, encoding="utf-8") as fh:
            text = fh.read()
        if rendered_readme(text) != text:
            found.append((README, rendered_readme(text)))
    return found


def main(argv: list[str]) -> int:
    found = stale()
    for path, text in found:
        if "--check" in argv:
            print("stale generated block: %s" % path)
            continue
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        print("wrote %s" % path)
    return 1 if found and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
