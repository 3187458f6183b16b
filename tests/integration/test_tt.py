"""tt (time tunnel) against a real target, on every interpreter found: record, list, show, replay, delete, budget."""

from __future__ import annotations

import re
from typing import Any

import pytest

from inproc_client import client
from instr_helpers import assert_clean, cli_many, instr_target_fixture, of_kind
from interpreters import find_interpreters
from support import RunningTarget

INTERPRETERS = find_interpreters()


target = instr_target_fixture()


def plain(node: dict[str, Any]) -> Any:
    if "v" in node:
        return node["v"]
    if node.get("kind") in ("list", "tuple"):
        return [plain(item) for item in node["items"]]
    return node.get("r")


def only(result: Any, kind: str) -> dict[str, Any]:
    events = of_kind(result, kind)
    assert len(events) == 1, result.stdout
    return events[0]


def test_records_keep_values_as_they_were(target: RunningTarget) -> None:
    client(target.pid, "tt -da")
    rows = of_kind(client(target.pid, "tt -t __main__ remember -n 3"), "record")
    assert len(rows) == 3
    assert [row["index"] for row in rows] == list(range(rows[0]["index"], rows[0]["index"] + 3))
    assert {row["method"] for row in rows} == {"__main__.remember"}
    # the target appends to the list after each call: the record shows it as the call saw it
    detail = only(client(target.pid, "tt -i %d -x 2" % rows[0]["index"]), "detail")
    assert len(plain(detail["args"])[0]) == 1 == plain(detail["return"])
    listing = only(client(target.pid, "tt -l"), "list")
    assert [row["index"] for row in listing["records"]] == [row["index"] for row in rows]
    assert listing["kept"] == 3 and listing["dropped"] == 0
    assert_clean(target.pid, target.extra["globals"])


def test_replay_runs_the_function_again(target: RunningTarget) -> None:
    client(target.pid, "tt -da")
    plain_row, fetch_row, fragile_row = (
        of_kind(result, "record")[0]
        for result in cli_many(
            target.pid,
            [
                "tt -t __main__ plain -n 1",
                "tt -t __main__ fetch -n 1",
                "tt -t __main__ fragile -n 1 -f 'args[0] % 3 == 0'",
            ],
        )
    )
    shown = only(client(target.pid, "tt -i %d" % plain_row["index"]), "detail")
    again, fetched, failed = (
        only(result, "replay")
        for result in cli_many(
            target.pid, ["tt -i %d -p" % row["index"] for row in (plain_row, fetch_row, fragile_row)]
        )
    )
    assert "ran __main__.plain again for real" in again["note"]
    assert again["replay_of"] == plain_row["index"] and again["index"] > fragile_row["index"]
    assert plain(again["return"]) == plain(shown["return"])
    assert plain(fetched["return"]) == plain(fetched["args"])[0] * 2 + 1  # the coroutine ran to its end
    assert failed["exception"]["type"] == "ValueError"
    assert [frame["name"] for frame in failed["exception"]["frames"]] == ["fragile"]
    listing = only(client(target.pid, "tt -l -m __main__.None.plain"), "list")
    assert [row["index"] for row in listing["records"]] == [plain_row["index"], again["index"]]
    assert_clean(target.pid, target.extra["globals"])


@pytest.mark.any_interpreter  # the record store's options (-d, -da, --max-records, --max-mb)
def test_delete_and_budgets(target: RunningTarget) -> None:
    client(target.pid, "tt -da")
    rows = of_kind(client(target.pid, "tt -t __main__ Shop tax -n 4 --max-records 2"), "record")
    assert len(rows) == 4
    listing = only(client(target.pid, "tt -l"), "list")
    assert [row["index"] for row in listing["records"]] == [rows[2]["index"], rows[3]["index"]]  # oldest went first
    assert listing["dropped"] == 2
    assert only(client(target.pid, "tt -d %d" % rows[2]["index"]), "deleted")["indexes"] == [rows[2]["index"]]
    gone = client(target.pid, "tt -i %d" % rows[2]["index"])
    assert gone.returncode != 0 and "no record %d" % rows[2]["index"] in gone.errors[0]
    assert only(client(target.pid, "tt -da"), "deleted")["count"] == 1
    client(target.pid, "tt -t __main__ plain -n 5 --max-mb 0.001")  # 1 KB: about one record fits
    listing = only(client(target.pid, "tt -l"), "list")
    assert listing["bytes"] <= listing["max_bytes"] == 1048 and listing["kept"] < 5 and listing["dropped"] > 0
    client(target.pid, "tt -da")


@pytest.mark.any_interpreter  # error messages
def test_bad_input(target: RunningTarget) -> None:
    commands = [
        ("tt", "tt needs exactly one of -t, -l, -i, -d, -da"),
        ("tt -l -da", "tt needs exactly one of -t, -l, -i, -d, -da, got -l -da"),
        ("tt -l -p", "-p replays a record: use it with -i INDEX"),
        ("tt -i 5 -m x", "-m filters the listing"),
        ("tt -l -f 'x'", "-f and -nm apply to recording"),
        ("tt -t __main__", "-t takes module [class] method"),
        ("tt -t __main__ plain -n 0", "-n must be at least 1"),
        ("tt -t __main__ plain -f 'args['", "bad expression"),
        ("tt -i 424242", "no record 424242"),
        ("tt -d 424242", "no record 424242"),
    ]
    for (command, message), result in zip(commands, cli_many(target.pid, [c for c, _ in commands])):
        assert result.returncode != 0 and len(result.errors) == 1, (command, result.stdout)
        assert message in result.errors[0], (command, result.errors)
    assert_clean(target.pid, target.extra["globals"])


@pytest.mark.any_interpreter  # the alias, -r/-v variants and rendering
def test_timetunnel_show_like_watch_raw_and_verbose(target: RunningTarget) -> None:
    """The seeds: `timetunnel` is tt; `tt -i` shows values as watch does; -r and -v are not ignored."""
    client(target.pid, "tt -da")
    row = of_kind(client(target.pid, "timetunnel -t __main__ remember -n 1"), "record")[0]
    text = client(target.pid, "tt -i %d" % row["index"], "--no-color", json_output=False)
    lines = text.stdout.splitlines()
    assert "  EXPR: args" in lines and "  TYPE: <class 'tuple'>" in lines, text.stdout
    value = lines[lines.index("  TYPE: <class 'tuple'>") + 1]
    assert re.match(r"  VALUE: \(\[\d+\],\)$", value), value  # the list inside, as watch -x 1 shows it
    raw = only(client(target.pid, "tt -i %d -r" % row["index"]), "detail")
    assert "r" in raw["args"] and "'later'" in raw["args"]["r"]  # repr() of the arguments as they are now
    verbose = only(client(target.pid, "tt -i %d -v" % row["index"]), "detail")
    assert verbose["args"]["kind"] == "tuple" and "later" in str(plain(verbose["args"]))  # read again, uncut
    assert_clean(target.pid, target.extra["globals"])
