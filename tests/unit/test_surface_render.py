"""``commands.surface``: the usage line and the skill table rendered from a parser and ``forms``/``option_docs``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from flight_profiler.commands.spec import CommandSpec, number
from flight_profiler.commands.surface import SurfaceError, option_table, split_words, usage


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
    path.write_text("---\nname: x\n---\n<!-- options: sc -->\n| option | meaning | default |\n<!-- /options -->\n")
    monkeypatch.setattr(tables, "skills", lambda: [load(str(path))])
    assert tables.main(["--check"]) == 1
    assert capsys.readouterr().out == "stale option table: %s\n" % path
    assert tables.main([]) == 0
    written = path.read_text()
    assert "| `-n N`, `--limit N` |" in written and written.startswith("---\nname: x\n---\n<!-- options: sc -->\n")
    assert tables.stale() == [] and tables.main(["--check"]) == 0
    assert isinstance(load(str(path)), Skill)
