"""``commands.surface``: the usage line and the skill table rendered from a parser and ``forms``/``option_docs``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from flight_profiler.commands.spec import CommandSpec, number
from flight_profiler.commands.surface import (
    SurfaceError,
    option_table,
    readme_row,
    readme_table,
    skill_usage,
    split_words,
    usage,
)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module")
    parser.add_argument("names", nargs="+", metavar="[class] method")
    parser.add_argument("-a", "--action", choices=("go", "stop"))
    parser.add_argument("-n", "--limits", metavar="N", type=number(int, 1), default=10)
    parser.add_argument("-t", "--tunnel", nargs="+", metavar="NAME")
    parser.add_argument("-c", "--class", dest="cls", nargs=2, metavar=("module", "class"))
    parser.add_argument("--rate", type=float, default=2.5)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)


def _spec(forms: tuple[str, ...] = (), docs: tuple[tuple[str, ...], ...] = ()) -> CommandSpec:
    return CommandSpec(
        name="demo",
        summary="",
        forms=forms,
        examples=(),
        add_arguments=_arguments,
        to_request=lambda ns: {},
        render=lambda event: None,
        option_docs=docs,
    )


def test_usage_fills_metavars_choices_and_brackets_from_the_parser() -> None:
    spec = _spec(("module [class] method [-n] [-v] [--rate]", "-a=go -c [-t]", "-t=module [class] method [-n]"))
    assert spec.usage == (
        "demo module [class] method [-n N] [-v] [--rate RATE]"
        " | demo -a go -c module class [-t NAME...]"
        " | demo -t module [class] method [-n N]"
    )
    assert usage(_spec(("[-a]",))) == "demo [-a go|stop]"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ("[--nope]", "no option --nope"),
        ("-a=jump", "'jump' is none of ['go', 'stop']"),
        ("[-n", "unbalanced"),
    ],
)
def test_usage_refuses_forms_the_parser_contradicts(form: str, error: str) -> None:
    with pytest.raises(SurfaceError, match=error.replace("[", r"\[").replace("]", r"\]")):
        usage(_spec((form,)))


def test_split_words_keeps_nested_brackets_whole() -> None:
    assert split_words("on [a b [c [d]]] [-d]  off") == ["on", "[a b [c [d]]]", "[-d]", "off"]


DOCS: tuple[tuple[str, ...], ...] = (
    ("module", "the module"),
    ("[class] method", "the function"),
    ("-a", "what to do", "required"),
    ("-n", "at most N"),
    ("-t", "record them", ""),
    ("-c", "the class"),
    ("--rate", "per second"),
    ("-v", "more"),
)


def test_table_rows_come_in_the_declared_order_with_the_parsers_names_and_defaults() -> None:
    lines = option_table(_spec(docs=DOCS)).splitlines()
    assert lines[:2] == ["| option | meaning | default |", "|---|---|---|"]
    assert lines[2:] == [
        "| `module` | the module | required |",
        "| `[class] method` | the function | required |",
        "| `-a ACTION`, `--action ACTION` | what to do | required |",
        "| `-n N`, `--limits N` | at most N | 10 |",
        "| `-t NAME...`, `--tunnel NAME...` | record them | |",
        "| `-c module class`, `--class module class` | the class | |",
        "| `--rate RATE` | per second | 2.5 |",
        "| `-v`, `--verbose` | more | off |",
    ]


@pytest.mark.parametrize(
    ("docs", "error"),
    [
        (DOCS[:-1], r"lacks \['-v'\]"),
        ((*DOCS, ("--hidden", "x")), "does not have"),
        ((*DOCS, ("-n", "twice")), "does not have"),
    ],
)
def test_table_refuses_docs_that_miss_or_invent_options(docs: Any, error: str) -> None:
    with pytest.raises(SurfaceError, match=error):
        option_table(_spec(docs=docs))


def test_the_tables_tool_reports_and_rewrites_a_stale_table(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flight_profiler.skills import Skill, load, tables

    path = tmp_path / "SKILL.md"
    path.write_text(
        "---\nname: x\n---\n<!-- options: sc -->\n| option | meaning | default |\n<!-- /options -->\n"
        '<!-- usage: sc sm -->\n```\nflight_profiler <pid> --cmd "sc"\n```\n<!-- /usage -->\n'
    )
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- commands -->\n| command | what it does |\n<!-- /commands -->\n\nafter\n")
    monkeypatch.setattr(tables, "skills", lambda: [load(str(path))])
    monkeypatch.setattr(tables, "README", str(readme))
    assert tables.main(["--check"]) == 1
    assert capsys.readouterr().out == "stale generated block: %s\nstale generated block: %s\n" % (path, readme)
    assert tables.main([]) == 0
    written = path.read_text()
    assert "| `-n N`, `--limit N` |" in written and written.startswith("---\nname: x\n---\n<!-- options: sc -->\n")
    assert '--cmd "sc PATTERN [-d] [-n N]" --no-color\nflight_profiler <pid> --cmd "sm PATTERN' in written
    written = readme.read_text()
    assert written.startswith(
        "# x\n\n<!-- commands -->\n| command | what it does |\n| --- | --- |\n| `help [command]` |"
    )
    assert "\n| `sm PATTERN [-d] [-n N]` | loaded functions" in written and written.endswith(
        "<!-- /commands -->\n\nafter\n"
    )
    assert tables.stale() == [] and tables.main(["--check"]) == 0
    assert isinstance(load(str(path)), Skill)


def test_a_usage_block_naming_no_command_is_refused() -> None:
    from flight_profiler.skills.tables import UnknownCommand, rendered_text

    with pytest.raises(UnknownCommand, match="nope"):
        rendered_text("<!-- usage: sc nope -->\n```\n```\n<!-- /usage -->\n")


def _main_spec(*forms: str, overview: str = "does it") -> CommandSpec:
    return _spec()._replace(main_forms=forms, overview=overview)


def test_usage_block_renders_the_main_forms_with_comments_aligned_and_the_skills_own_lines() -> None:
    spec = _main_spec(
        "# first, a comment line",
        "<module> [<class>] method [-n]  # short",
        "-a=go -c=<m> <c> [-t]  # a longer one",
        "$ echo x | flight_profiler <pid> --cmd demo",
        "[-a=...] [-v]",
    )
    assert skill_usage([spec]) == (
        "```\n"
        "# first, a comment line\n"
        'flight_profiler <pid> --cmd "demo <module> [<class>] method [-n N]" --no-color   # short\n'
        'flight_profiler <pid> --cmd "demo -a go -c <m> <c> [-t NAME...]" --no-color      # a longer one\n'
        "echo x | flight_profiler <pid> --cmd demo\n"
        'flight_profiler <pid> --cmd "demo [-a ...] [-v]" --no-color\n'
        "```\n"
    )


def test_readme_row_shows_forms_without_placeholder_brackets_and_escapes_bars() -> None:
    spec = _main_spec("# skill only", "<module> [<class>] method [-a]  # comment", "-c=<m> <c>", overview="it works")
    assert readme_row(spec) == "| `demo module [class] method [-a go\\|stop]` / `demo -c m c` | it works |\n"
    assert readme_table([spec], ("| `help` | h |\n",)).splitlines() == [
        "| command | what it does |",
        "| --- | --- |",
        "| `help` | h |",
        readme_row(spec).rstrip("\n"),
    ]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (_main_spec("# only a comment"), "main_forms has no form"),
        (_main_spec("[-nope]"), "no option -nope"),
        (_main_spec("-a=jump"), "none of"),
        (_main_spec("[-a]", overview=""), "no overview"),
        (_main_spec("[-a]", overview="a | b"), "bare"),
    ],
)
def test_short_forms_refuse_what_the_parser_contradicts(spec: CommandSpec, error: str) -> None:
    with pytest.raises(SurfaceError, match=error):
        readme_row(spec)
