"""``tt`` (time tunnel) in the CLI: record calls, list, show, replay and delete records."""

from __future__ import annotations

import argparse

from ...errors import UsageError
from ...render.safe import safe_line
from ..calls import (
    ICON_FAILED,
    ICON_OK,
    SEPARATOR,
    add_nested_argument,
    add_rate_argument,
    at_least,
    budget_request,
    exception_block,
    expr_block,
    extras_line,
    nested_doc,
    non_negative,
    render_notice,
    render_start,
    timestamp,
)
from ..spec import (
    CALL_NAMES,
    CommandSpec,
    add_expression_argument,
    add_render_options,
    check_expression,
    given_options,
    number,
    render_options,
)
from ..targeting import check_names, owner_and_name
from .model import DEFAULTS

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

    from rich.console import RenderableType
    from rich.text import Text

    from .model import TtRecordRequest, TtRequest


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t",
        "--time-tunnel",
        "--time_tunnel",
        dest="location",
        nargs="+",
        metavar="NAME",
        help="record calls of module [class] method",
    )
    add_nested_argument(parser)
    parser.add_argument(
        "-n",
        "--limits",
        metavar="N",
        type=number(int, 1),
        default=DEFAULTS["limit"],
        help="records to make with -t (default %d)" % DEFAULTS["limit"],
    )
    parser.add_argument("-l", "--list", action="store_true", help="list the records")
    parser.add_argument("-i", "--index", metavar="INDEX", type=number(int, 0), help="show the record with this index")
    parser.add_argument(
        "-d", "--delete", type=number(int, 0), metavar="INDEX", help="delete the record with this index"
    )
    parser.add_argument("-da", "--delete_all", action="store_true", help="delete every record")
    parser.add_argument(
        "-p", "--play", action="store_true", help="with -i: call the function again with those arguments"
    )
    add_expression_argument(parser, "-f", "--filter", help="with -t: only calls for which this is true (as in watch)")
    parser.add_argument(
        "--budget-ms",
        dest="budget_ms",
        type=number(float, 0, 3_600_000, above=True),
        metavar="MS",
        help="time budget in ms of one -f evaluation or capture with -t (default 200: past it, switched off), "
        "of a replay with -p (default 60000: past it, stopped), of each value's own code -i -r/-v captures "
        "(default 5000: past it, shown as a placeholder)",
    )
    parser.add_argument(
        "-m", "--method", metavar="NAME", help="with -l: only records of module.class.method (class None: a function)"
    )
    add_rate_argument(parser, DEFAULTS["rate"], "records")
    parser.add_argument(
        "--max-records",
        metavar="N",
        type=number(int, 1),
        default=DEFAULTS["max_records"],
        help="records kept at most (default %d)" % DEFAULTS["max_records"],
    )
    parser.add_argument(
        "--max-mb",
        metavar="MB",
        type=number(float, 0, above=True),
        default=DEFAULTS["max_mb"],
        help="MB the records may take (default %g)" % DEFAULTS["max_mb"],
    )
    add_render_options(parser)


# The usage line's forms, in the reference's order (rendered with the parser: commands/surface.py).
USAGE_FORMS = (
    "-t=module [class] method [-nm] [-n] [-f] [--budget-ms] [--rate] [--max-records] [--max-mb]",
    "-l [-m]",
    "-i [-x] [-v] [-r] [-p] [--budget-ms]",
    "-d",
    "-da",
)
# The skill's option table (skills/tables.py writes it): first flag or positional, meaning[, default in words].
OPTION_DOCS = (
    ("-t", "record calls of `module [class] method` (`timetunnel` is another name of `tt`)", "one of -t/-l/-i/-d/-da"),
    (
        "-nm",
        nested_doc("with `-t`: record"),
        "off",
    ),
    ("-n", "with `-t`: records to make, then stop"),
    (
        "-f",
        "with `-t`: only calls for which this is true (`target`, `args`, `kwargs`, `return_obj`, `cost`, as in "
        "watch); takes the rest of the line up to the next option, quotes not needed",
        "all",
    ),
    (
        "--budget-ms",
        "with `-t`: budget of one `-f` evaluation or capture (200: past it, switched off); with `-i IDX -p`: budget "
        "of the replay (60000: past it, stopped); with `-i IDX -r/-v`: budget of each live value's own code "
        "(`__repr__`, a property: 5000, past it shown as a placeholder)",
        "200 / 60000",
    ),
    ("--rate", "with `-t`: at most N records per second; the others are counted as skipped"),
    ("--max-records", "records kept at most (the oldest are dropped)"),
    ("--max-mb", "memory the records may take in the target (the oldest are dropped)"),
    ("-l", "list the records", ""),
    ("-m", "with `-l`: only records of `module.Class.method` (`module.None.func` for a function)", "all"),
    ("-i", "show record INDEX"),
    ("-p", "with `-i`: call the function again with record INDEX's arguments (**changes the target**)"),
    ("-d", "delete record INDEX"),
    ("-da", "delete every record", ""),
    ("-x", "depth to expand values (record and show)"),
    ("-v", "every item of containers, whole long strings (with `-i`: the arguments read again, uncut)"),
    ("-r", "`repr()` of values instead of trees (with `-i`: the arguments' repr as they are now)"),
)
# README's Commands table and the skill's Usage block: the main forms (commands/surface.py), what it does.
MAIN_FORMS = (
    "-t=<module> [<class>] <method> [-n] [-f]  # record",
    "-l [-m=module.Class.method]  # list",
    "-i=<index> [-x] [-v] [-r]  # show",
    "-i=<index> -p  # replay (changes the target)",
    "-d=<index>  # delete one record",
    "-da  # delete every record",
)
OVERVIEW = (
    "(`timetunnel`) record calls (bounded by count and bytes, values as they were), list, inspect as watch shows a "
    "call, replay one (`-p` runs it again for real, budget 60000 ms), delete"
)


def _to_request(ns: argparse.Namespace) -> TtRequest:
    modes = [
        name
        for name, given in (
            ("-t", ns.location is not None),
            ("-l", ns.list),
            ("-i", ns.index is not None),
            ("-d", ns.delete is not None),
            ("-da", ns.delete_all),
        )
        if given
    ]
    if len(modes) != 1:
        raise UsageError(
            "tt needs exactly one of -t, -l, -i, -d, -da%s" % (", got " + " ".join(modes) if modes else "")
        )
    mode = modes[0]
    _check_companions(ns, mode)
    if mode == "-t":
        return _record_request(ns)
    if mode == "-l":
        return {"action": "list", "method_filter": ns.method}
    if mode == "-i":
        if ns.play:
            return {"action": "replay", "play": True, "index": ns.index, **budget_request(ns), **render_options(ns)}
        return {"action": "show", "play": False, "index": ns.index, **budget_request(ns), **render_options(ns)}
    if mode == "-d":
        return {"action": "delete", "index": ns.delete}
    return {"action": "delete_all"}


# options that mean something only in some modes (the others' are checked in _check_companions):
# given elsewhere they were ignored without a word (tt -l -x 3)
_MODES_OF = (
    (("limits", "rate", "max_records", "max_mb"), ("-t",), "recording"),
    (("expand", "verbose", "raw", "budget_ms"), ("-t", "-i"), "recording and showing a record"),
)
_FLAGS = {
    "limits": "-n",
    "rate": "--rate",
    "max_records": "--max-records",
    "max_mb": "--max-mb",
    "expand": "-x",
    "verbose": "-v",
    "raw": "-r",
    "budget_ms": "--budget-ms",
}
_MODE_DESTS = (("location", "-t"), ("list", "-l"), ("index", "-i"), ("delete", "-d"), ("delete_all", "-da"))


def _check_words(argv: list[str]) -> None:
    given = given_options(SPEC.parser(), argv)
    modes = [flag for dest, flag in _MODE_DESTS if dest in given]
    if len(modes) != 1:
        return  # _to_request says which one is wanted
    for dests, modes_for, what in _MODES_OF:
        for dest in dests:
            if dest in given and modes[0] not in modes_for:
                raise UsageError(
                    "%s applies to %s (%s), not to %s" % (_FLAGS[dest], what, "/".join(modes_for), modes[0])
                )


def _check_companions(ns: argparse.Namespace, mode: str) -> None:
    if ns.play and mode != "-i":
        raise UsageError("-p replays a record: use it with -i INDEX")
    if ns.method is not None and mode != "-l":
        raise UsageError("-m filters the listing: use it with -l")
    if mode != "-t" and (ns.filter is not None or ns.nested is not None):
        raise UsageError("-f and -nm apply to recording: use them with -t")


def _record_request(ns: argparse.Namespace) -> TtRecordRequest:
    names: list[str] = ns.location
    if not 2 <= len(names) <= 3:
        raise UsageError("-t takes module [class] method, got %d name(s)" % len(names))
    check_names(names)
    cls, method = owner_and_name(names[1] if len(names) == 3 else None, names[-1])
    return {
        "action": "record",
        "module": names[0],
        "cls": cls,
        "method": method,
        "nested": ns.nested,
        "filter": check_expression(ns.filter, CALL_NAMES, "-f"),
        **budget_request(ns),
        "limit": at_least(ns.limits, 1, "-n"),
        "rate": non_negative(ns.rate, "--rate"),
        "max_records": at_least(ns.max_records, 1, "--max-records"),
        "max_mb": ns.max_mb,
        **render_options(ns),
    }


def _render(event: dict[str, Any]) -> RenderableType | None:
    from rich.text import Text

    kind = event.get("kind")
    if kind == "start":
        from rich.console import Group

        rate = "at most %g records/s" % event["rate"] if event["rate"] else "no rate limit"
        # the rows' header, as tt -l prints it: every row of one recording names the same method
        header = _header(len(safe_line(event["target"])))
        return Group(render_start(event, "recording", "-n %d, %s" % (event["limit"], rate)), header)
    if kind == "record":
        return _row_text(event)
    if kind == "end":
        return Text("%d call(s) recorded; %s" % (event["shown"], _budget(event)), style="dim")
    if kind == "list":
        return _render_list(event)
    if kind in ("detail", "replay"):
        return _render_detail(event)
    if kind == "deleted":
        if "count" in event:
            return Text("deleted all %d record(s)" % event["count"])
        return Text("deleted record %s" % ", ".join(str(i) for i in event["indexes"]))
    return render_notice(event)


def _header(method_width: int) -> Text:
    """The columns of ``_row_text``'s rows, METHOD as wide as its widest name."""
    from rich.text import Text

    return Text(
        "%-6s %-23s  %12s  %-9s  %-*s  %s" % ("INDEX", "TIME", "COST", "RESULT", method_width, "METHOD", "THREAD"),
        style="bold",
    )


def _row_text(row: dict[str, Any], method_width: int = 0) -> Text:
    from rich.text import Text

    text = Text()
    text.append("%-6d" % row["index"], style="bold")
    text.append(" %s  %10.3fms  " % (timestamp(row["time"]), row["cost"]))
    text.append("exception" if row["is_exception"] else "return   ", style="red" if row["is_exception"] else "green")
    text.append("  %-*s  %s" % (method_width, safe_line(row["method"]), safe_line(row.get("thread", ""))))
    if row.get("replay_of"):
        text.append("  (replay of %d)" % row["replay_of"], style="dim")
    if row.get("error"):
        text.append("  %s" % safe_line(row["error"]), style="red")
    return text


def _budget(event: dict[str, Any]) -> str:
    text = "%d record(s) kept, %.1f of %.1f MB, at most %d" % (
        event["kept"],
        event["bytes"] / 1048576.0,
        event["max_bytes"] / 1048576.0,
        event["max_records"],
    )
    if event.get("dropped"):
        text += "; %d oldest record(s) dropped to stay within that" % event["dropped"]
    return text


def _render_list(event: dict[str, Any]) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    width = max([len(safe_line(row["method"])) for row in event["records"]] + [len("METHOD")])
    lines: list[Any] = [_header(width)]
    lines.extend(_row_text(row, width) for row in event["records"])
    if not event["records"] and event.get("kept"):  # records are kept, so -m matched none of them
        lines.append(Text("no record matches -m (module.class.method, None as the class of a function)", style="dim"))
    elif not event["records"]:
        lines.append(Text("no records (tt -t module [class] method records calls)", style="dim"))
    lines.append(Text(_budget(event), style="dim"))
    return Group(*lines)


def _render_detail(event: dict[str, Any]) -> RenderableType:
    """A record as the seeds show a call: rule, title, ``result={`` EXPR/TYPE/VALUE ``}``; ours below."""
    from rich.console import Group
    from rich.text import Text

    failed = "exception" in event
    title = Text()
    title.append(ICON_FAILED if failed else ICON_OK, style="red" if failed else "green")
    title.append(" %s index=%d method=%s" % (timestamp(event["time"]), event["index"], safe_line(event["method"])))
    title.append(" cost=%.6fms is_exp=%s result={" % (event["cost"], failed))
    lines: list[Any] = [Text(SEPARATOR, style="dim"), title]
    values = [("args", event["args"])]
    if event["kwargs"].get("len"):
        values.append(("kwargs", event["kwargs"]))
    if "return" in event:
        values.append(("return_obj", event["return"]))
    lines.extend(expr_block(values, "  "))
    if failed:
        lines.append(exception_block(event["exception"]))
    lines.append(Text("}"))
    extras = extras_line(event)
    if extras is not None:
        lines.append(extras)
    if event.get("note"):
        lines.append(Text(safe_line(event["note"]), style="yellow"))
    if event.get("error"):
        lines.append(Text(safe_line(event["error"]), style="red"))
    return Group(*lines)


SPEC = CommandSpec(
    name="tt",
    summary="Record calls of a function (time tunnel; also named timetunnel), list them, show one, replay one (-p "
    "runs it again).",
    forms=USAGE_FORMS,
    option_docs=OPTION_DOCS,
    main_forms=MAIN_FORMS,
    overview=OVERVIEW,
    examples=(
        "tt -t __main__ func",
        "tt -t __main__ A func",
        "tt -l",
        "tt -i 1000 -x 3",
        "tt -i 1000 -p",
        "tt -t __main__ func -f return_obj['success']==True and cost>10",
    ),
    add_arguments=_add_arguments,
    check_words=_check_words,
    to_request=_to_request,
    render=_render,
    changes_target=True,  # only -p does: it calls the function again
)
