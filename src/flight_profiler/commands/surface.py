"""A command's usage line, skill option table and Usage block, and README row, rendered from its parser.

A command declares its options once, in its parser (``CommandSpec.add_arguments``: flags, metavars,
defaults, choices). What the parser cannot say is declared next to it in the command's ``SPEC``:

- ``forms``: the usage line's forms, each a string of words in the order the reference's help
  pages use (users' agents read them). A word that names an option is rendered from the parser:
  ``[-n]`` becomes ``[-n N]``, ``-l`` (no brackets: the form needs it) ``-l``; ``-a=forceGc`` shows
  a value in place of the metavar (one of the option's choices, or what is typed there; without
  brackets it runs up to the next option: ``-t=module [class] method``; ``[--order=...]`` leaves the
  value out on purpose). Any other word
  (``module``, ``[class]``, ``summary``) is shown as written.
- ``option_docs``: the skill's table rows, in the skill's order: ``(name, meaning)`` or
  ``(name, meaning, default)``, where ``name`` is the option's first flag or the positional's
  name. The first cell (every flag with its metavar) comes from the parser, and so does the
  default cell unless the row says it in words.
- ``main_forms``: the forms README's Commands table and the skill's Usage block show (the main
  options only), in the words of ``forms``; ``<module>`` is a placeholder the skill shows as
  written and README without its angle brackets. ``  # comment`` after a form is the skill's
  comment on that line. Two kinds of entries are the skill's own lines, shown as written: ``# ...``
  (a comment line) and ``$ ...`` (a shell line, without the ``$ ``).
- ``overview``: README's "what it does" cell.

``skills/tables.py`` writes the tables and the Usage blocks into the SKILL.md files and the Commands
table into README.md; tests/unit/test_surfaces.py checks that what is stored there is what this renders.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import CommandSpec

HEADER = "| option | meaning | default |\n|---|---|---|\n"
ELIDED = "..."  # ``[--order=...]``: the option's value left out of a short form on purpose


class SurfaceError(ValueError):
    """A ``forms`` or ``option_docs`` entry that does not match the parser (a programming error)."""


def usage(spec: CommandSpec) -> str:
    """The usage line: the forms joined by `` | ``, each led by the command's name."""
    parser = spec.parser()
    return " | ".join(" ".join((spec.name, *_usage_words(parser, form))) for form in spec.forms)


def _usage_words(parser: argparse.ArgumentParser, form: str) -> list[str]:
    words = split_words(form)
    shown = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("-") and "=" in word:  # a value in words: it runs up to the next option
            while index < len(words) and not words[index].startswith(("-", "[-")):
                word += " " + words[index]
                index += 1
        shown.append(_usage_word(parser, word))
    return shown


def split_words(form: str) -> list[str]:
    """``form`` split at spaces outside brackets: ``[interval_s [max_threads]]`` stays one word."""
    words, depth, word = [], 0, ""
    for char in form:
        if char == " " and depth == 0:
            if word:
                words.append(word)
            word = ""
            continue
        depth += (char == "[") - (char == "]")
        word += char
    if depth:
        raise SurfaceError("unbalanced brackets in %r" % form)
    return [*words, word] if word else words


def _usage_word(parser: argparse.ArgumentParser, word: str) -> str:
    optional = word.startswith("[") and word.endswith("]")
    inner = word[1:-1] if optional else word
    flag, sep, shown = inner.partition("=")
    if not flag.startswith("-"):
        return word
    action = _option(parser, flag)
    if sep and action.choices is not None and shown not in action.choices and shown != ELIDED:
        raise SurfaceError("%s: %r is none of %s" % (parser.prog, shown, sorted(action.choices)))
    value = shown if sep else _usage_value(action)
    text = "%s %s" % (flag, value) if value else flag
    return "[%s]" % text if optional else text


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    action = parser._option_string_actions.get(flag)  # argparse keeps no public map of them
    if action is None:
        raise SurfaceError("%s: the parser has no option %s" % (parser.prog, flag))
    return action


def _usage_value(action: argparse.Action) -> str:
    """What follows the flag in the usage line: its choices when it has a few, else its metavar."""
    if action.nargs == 0:
        return ""
    if action.choices is not None:
        return "|".join(str(choice) for choice in action.choices)
    return metavar(action)


def metavar(action: argparse.Action) -> str:
    """The option's value as the table shows it: ``N``, ``module class``, ``NAME...`` (one or more)."""
    if action.nargs == 0:
        return ""
    shown = action.metavar
    if shown is None:
        shown = action.dest.upper()
    text = " ".join(shown) if isinstance(shown, tuple) else shown
    return text + "..." if action.nargs in ("+", "*") and action.option_strings else text


def option_table(spec: CommandSpec) -> str:
    """The body of the skill's ``<!-- options: NAME -->`` block (header and one row per entry)."""
    parser = spec.parser()
    by_name = _documented(parser)
    rows = []
    for entry in spec.option_docs:
        name, meaning = entry[0], entry[1]
        action = by_name.pop(name, None)
        if action is None:
            raise SurfaceError("%s: option_docs names %r, which the parser does not have" % (spec.name, name))
        default = entry[2] if len(entry) > 2 else _default(action)
        rows.append(
            "|%s|\n" % "|".join(" %s " % cell if cell else " " for cell in (_names_cell(action), meaning, default))
        )
    if by_name:
        raise SurfaceError("%s: option_docs lacks %s" % (spec.name, sorted(by_name)))
    return HEADER + "".join(rows)


def _documented(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The actions a table lists, by row name: the first flag, or the positional's metavar (else its name)."""
    found = {}
    for action in parser._actions:  # argparse keeps no public list of them
        if action.help == argparse.SUPPRESS:
            continue
        found[action.option_strings[0] if action.option_strings else positional_name(action)] = action
    return found


def positional_name(action: argparse.Action) -> str:
    return action.metavar if isinstance(action.metavar, str) else action.dest


def _names_cell(action: argparse.Action) -> str:
    if not action.option_strings:
        return "`%s`" % positional_name(action)
    value = metavar(action)
    return ", ".join("`%s`" % ("%s %s" % (flag, value) if value else flag) for flag in action.option_strings)


def _default(action: argparse.Action) -> str:
    """The default cell the parser implies: "required", "off" for a flag, the value, or nothing."""
    if not action.option_strings:
        return "required" if action.nargs not in ("?", "*") else ""
    default = action.default
    if isinstance(default, bool):
        return "off" if default is False else "on"
    if default is None or default == argparse.SUPPRESS:
        return ""
    return "%g" % default if isinstance(default, (int, float)) else str(default)


# ---------------------------------------------------------------- the short forms: skills' Usage blocks, README


def main_forms(spec: CommandSpec) -> list[tuple[str, str]]:
    """``(form, comment)`` per entry of ``spec.main_forms`` that is a form: the command's name and the words
    rendered from the parser (``[-n]`` as ``[-n N]``), and the skill's comment on it ("" when none)."""
    parser = spec.parser()
    found = []
    for entry in spec.main_forms:
        if entry.startswith(("#", "$ ")):
            continue
        form, _, comment = entry.partition("  # ")
        found.append((" ".join((spec.name, *_usage_words(parser, form.strip()))), comment.strip()))
    if not found:
        raise SurfaceError("%s: main_forms has no form" % spec.name)
    return found


SKILL_LINE = 'flight_profiler <pid> --cmd "%s" --no-color'
COMMENT_GAP = 3  # spaces between the longest commented line and its comment


def skill_usage(specs: list[CommandSpec]) -> str:
    """The body of a skill's ``<!-- usage: NAME... -->`` block: one fenced block, a line per main form of
    each command in ``specs`` (comments aligned), the skill's own lines among them as written."""
    lines: list[tuple[str, str]] = []
    for spec in specs:
        forms = iter(main_forms(spec))
        for entry in spec.main_forms:
            if entry.startswith("#"):
                lines.append((entry, ""))
            elif entry.startswith("$ "):
                lines.append((entry[2:], ""))
            else:
                form, comment = next(forms)
                lines.append((SKILL_LINE % form, comment))
    width = max((len(text) for text, comment in lines if comment), default=0) + COMMENT_GAP
    shown = [text.ljust(width) + "# " + comment if comment else text for text, comment in lines]
    return "```\n%s\n```\n" % "\n".join(shown)


README_HEADER = "| command | what it does |\n| --- | --- |\n"
_PLACEHOLDER = re.compile(r"<([A-Za-z_]\w*)>")


def readme_row(spec: CommandSpec) -> str:
    """README's Commands row of ``spec``: its main forms (placeholders without angle brackets), its overview."""
    if not spec.overview or re.search(r"(?<!\\)\|", spec.overview):
        raise SurfaceError("%s: no overview, or one with a bare | (README's Commands table)" % spec.name)
    forms = " / ".join("`%s`" % _PLACEHOLDER.sub(r"\1", form) for form, _ in main_forms(spec))
    return "| %s | %s |\n" % (forms.replace("|", "\\|"), spec.overview)


def readme_table(specs: list[CommandSpec], before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> str:
    """The body of README's ``<!-- commands -->`` block: the header, ``before`` (rows as written), a row per
    command, ``after``."""
    return README_HEADER + "".join(before) + "".join(readme_row(spec) for spec in specs) + "".join(after)
