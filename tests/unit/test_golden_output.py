"""Golden text output: each command renders constructed events in the shapes of the seeds' examples.

The seeds (the reference product's docs) show: the trace skill's title and tree, the vmtool
skill's EXPR / TYPE / VALUE block and forceGc sentence, the command guide's gilstat columns.
What we show beyond them (thread, skipped counts) comes below the seeds' fields. No target is
needed: the renderers get the events the agent sends (see docs/json-schema.md).
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from flight_profiler.commands.getglobal.client import SPEC as GETGLOBAL
from flight_profiler.commands.gilstat.client import SPEC as GILSTAT
from flight_profiler.commands.perf.client import SPEC as PERF
from flight_profiler.commands.stack.client import SPEC as STACK
from flight_profiler.commands.trace.client import SPEC as TRACE
from flight_profiler.commands.tt.client import SPEC as TT
from flight_profiler.commands.vmtool.client import SPEC as VMTOOL
from flight_profiler.commands.watch.client import SPEC as WATCH
from flight_profiler.render.console import make_console

# 2026-04-19 11:35:38.953 local time, as in the trace skill's first example
WHEN = time.mktime((2026, 4, 19, 11, 35, 38, 0, 0, -1)) + 0.9535
RULE = "\u2500" * 60


def text(renderable: Any) -> list[str]:
    out = io.StringIO()
    make_console(color=False, file=out, width=200).print(renderable)
    return out.getvalue().rstrip("\n").splitlines()


def scalar(value: Any) -> dict[str, Any]:
    return {"t": type(value).__name__, "v": value}


def connection(host: str, port: int, status: str) -> dict[str, Any]:
    attrs = {"host": scalar(host), "port": scalar(port), "status": scalar(status)}
    return {"t": "__main__.Connection", "kind": "object", "attrs": attrs, "more": 0}


def node(name: str, cost: float, file: str = "<built-in>", line: int = 0, *children: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "cost": cost, "file": file, "line": line, "children": list(children)}


def demo_tree() -> dict[str, Any]:
    script = "/srv/app/trace_demo_script.py"
    return node(
        "process_order",
        90.003,
        script,
        6,
        node("validate", 5.574, script, 13, node("sleep", 5.52)),
        node(
            "compute_price",
            31.402,
            script,
            16,
            node("sleep", 21.285),
            node("apply_discount", 10.074, script, 20, node("sleep", 10.049)),
        ),
        node("save_to_db", 52.99, script, 23, node("sleep", 52.949)),
    )


def test_trace_block_is_the_trace_skills_example() -> None:
    event = {
        "kind": "trace",
        "index": 1,
        "time": WHEN,
        "cost": 90.003,
        "thread": "MainThread",
        "tid": 8722965056,
        "daemon": False,
        "root": demo_tree(),
        "hidden": 0,
    }
    assert text(TRACE.render(event)) == [
        RULE,
        "\U0001f50d 2026-04-19 11:35:38:953 thread=MainThread tid=8722965056 daemon=False cost=90.003ms",
        "[90.003ms] process_order trace_demo_script.py:6",
        "├─ [5.574ms] validate trace_demo_script.py:13",
        "│  └─ [5.52ms] sleep <built-in>",
        "├─ [31.402ms] compute_price trace_demo_script.py:16",
        "│  ├─ [21.285ms] sleep <built-in>",
        "│  └─ [10.074ms] apply_discount trace_demo_script.py:20",
        "│     └─ [10.049ms] sleep <built-in>",
        "└─ [52.99ms] save_to_db trace_demo_script.py:23",
        "   └─ [52.949ms] sleep <built-in>",
    ]


def one_call_tree(**fields: Any) -> dict[str, Any]:
    """A trace event of one call, f at /x/a.py:3 taking 1 ms, with ``fields`` added."""
    return {
        "kind": "trace",
        "index": 1,
        "time": WHEN,
        "cost": 1.0,
        "thread": "MainThread",
        "tid": 1,
        "daemon": False,
        "root": node("f", 1.0, "/x/a.py", 3),
        **fields,
    }


def test_trace_says_how_many_calls_its_depth_left_out() -> None:
    event = one_call_tree(hidden=0, truncated=0, deeper=7, depth=2)
    assert text(TRACE.render(event))[-2:] == ["[1ms] f a.py:3", "7 call(s) below depth 2 not shown"]


def test_trace_says_at_once_what_it_skipped_and_why() -> None:
    event = one_call_tree(index=2, not_traced_budget=18, skipped=2)
    lines = text(TRACE.render(event))
    assert (
        lines[-1]
        == "18 invocation(s) before this one not traced: --budget; 2 tree(s) before this one skipped by --rate"
    )
    end = {"kind": "end", "reason": "limit", "shown": 3, "below_entrance_time": 4, "not_traced_budget": 18}
    assert text(TRACE.render(end)) == [
        "3 tree(s) shown; 4 invocation(s) under -et; 18 invocation(s) not traced (--budget)"
    ]


def test_vmtool_get_instances_is_the_vmtool_skills_block() -> None:
    conns = [connection("queue", 5672, "error"), connection("cache", 6379, "idle")]
    event = {"action": "getInstances", "class": "__main__.Connection", "count": 4, "instances": conns}
    assert text(VMTOOL.render(event)) == [
        "EXPR: instances",
        "TYPE: <class 'list'>",
        "VALUE: [",
        "  Connection({'host': 'queue', 'port': 5672, 'status': 'error'}),",
        "  Connection({'host': 'cache', 'port': 6379, 'status': 'idle'})",
        "]",
        "4 live instance(s) of __main__.Connection; 2 shown (-n -1 shows all)",
    ]
    counted = {"action": "getInstances", "class": "__main__.Connection", "count": 4, "expr": "len(instances)"}
    assert text(VMTOOL.render({**counted, "value": scalar(4)}))[:3] == [
        "EXPR: len(instances)",
        "TYPE: <class 'int'>",
        "VALUE: 4",
    ]
    one = {**counted, "expr": "instances[0]", "value": connection("queue", 5672, "error")}
    assert text(VMTOOL.render(one))[:3] == [
        "EXPR: instances[0]",
        "TYPE: <class '__main__.Connection'>",
        "VALUE: Connection({'host': 'queue', 'port': 5672, 'status': 'error'})",
    ]


def test_vmtool_expanded_instance_and_short_lists_are_the_vmtool_skills_shapes() -> None:
    """The skill's ``-e instances[0] -x 2``: one attribute per line, JSON style; its filtered list of one
    instance, and ``-n 2``: one instance per line, however short the list."""
    counted = {"action": "getInstances", "class": "__main__.Task", "count": 1, "expr": "instances[0]", "expand": 2}
    task = {
        "t": "__main__.Task",
        "kind": "object",
        "attrs": {"name": scalar("cleanup_logs"), "priority": scalar(1), "task_id": scalar(3)},
        "more": 0,
    }
    assert text(VMTOOL.render({**counted, "value": task})) == [
        "EXPR: instances[0]",
        "TYPE: <class '__main__.Task'>",
        "VALUE: Task({",
        '  "name": "cleanup_logs",',
        '  "priority": 1,',
        '  "task_id": 3',
        "})",
        "1 live instance(s) of __main__.Task",
    ]
    nested = dict(
        task,
        attrs={
            "tags": {"t": "dict", "kind": "dict", "len": 1, "items": [[scalar("k"), scalar(None)]]},
            "hostile": scalar("\x1b]0;x\x07\u202e"),
            "ok": scalar(True),
        },
    )
    assert text(VMTOOL.render({**counted, "value": nested}))[3:6] == [
        '  "tags": {"k": null},',
        '  "hostile": "\\u001b]0;x\\u0007\\u202e",',  # escaped as JSON escapes them: nothing reaches the terminal
        '  "ok": true',
    ]
    filtered = {**counted, "expr": "[i for i in instances if i.status=='error']", "expand": 1}
    one_item = {"t": "list", "kind": "list", "len": 1, "items": [connection("queue", 5672, "error")]}
    assert text(VMTOOL.render({**filtered, "value": one_item}))[2:5] == [
        "VALUE: [",
        "  Connection({'host': 'queue', 'port': 5672, 'status': 'error'})",
        "]",
    ]
    at_depth_1 = {**counted, "expand": 1, "value": task}
    assert text(VMTOOL.render(at_depth_1))[2] == "VALUE: Task({'name': 'cleanup_logs', 'priority': 1, 'task_id': 3})"


def test_vmtool_force_gc_is_the_seeds_sentence_then_ours() -> None:
    event = {"action": "forceGc", "collected": 76, "ms": 3.25, "count_before": [5, 1, 0], "count_after": [0, 0, 0]}
    assert text(VMTOOL.render(event)) == [
        "Gc execute successfully, totally 76 unreachable objects are freed.",
        "took 3.2 ms; generation counts [5, 1, 0] -> [0, 0, 0]",
    ]


def test_getglobal_is_an_expression_block() -> None:
    value = {"t": "list", "kind": "list", "len": 3, "items": [scalar(1), scalar(2), scalar(3)]}
    assert text(GETGLOBAL.render({"name": "__main__.g_list", "type": "list", "value": value})) == [
        "EXPR: target",
        "TYPE: <class 'list'>",
        "VALUE: [1, 2, 3]",
        "target=__main__.g_list",
    ]
    failed = {"name": "__main__.CONFIG", "type": "dict", "expr": "target['x']", "error": "KeyError: 'x'"}
    assert text(GETGLOBAL.render(failed))[:2] == ["EXPR: target['x']", "FAILED: KeyError: 'x'"]


def test_watch_call_is_the_seeds_result_block_with_ours_below() -> None:
    args = {
        "t": "tuple",
        "kind": "tuple",
        "len": 1,
        "items": [{"t": "dict", "kind": "dict", "len": 1, "items": [[scalar("query"), scalar("hello")]]}],
    }
    event = {
        "kind": "call",
        "index": 1,
        "time": WHEN,
        "cost": 1.5,
        "method": "__main__.func",
        "thread": "MainThread",
        "tid": 7,
        "daemon": False,
        "values": [{"expr": "args", "value": args}, {"expr": "return_obj", "value": scalar(True)}],
        "skipped": 3,
    }
    assert text(WATCH.render(event)) == [
        RULE,
        "\u2713 2026-04-19 11:35:38:953 method=__main__.func cost=1.500000ms is_exp=False result={",
        "  EXPR: args",
        "  TYPE: <class 'tuple'>",
        "  VALUE: ({'query': 'hello'},)",
        "  EXPR: return_obj",
        "  TYPE: <class 'bool'>",
        "  VALUE: True",
        "}",
        "thread=MainThread tid=7 daemon=False  3 matching call(s) before this one skipped by --rate",
    ]
    frames = [{"file": "/srv/app.py", "line": 9, "name": "func"}]
    raised = {
        **event,
        "values": [],
        "exception": {"type": "ValueError", "message": "bad", "frames": frames},
        "skipped": 0,
    }
    lines = text(WATCH.render(raised))
    assert lines[1].startswith("\u2717 ") and lines[1].endswith("is_exp=True result={")
    assert lines[2:5] == ["  EXCEPTION: ValueError: bad", '    File "/srv/app.py", line 9, in func', "}"]


def test_tt_detail_shows_values_like_watch() -> None:
    query = {
        "t": "dict",
        "kind": "dict",
        "len": 2,
        "items": [[scalar("q"), scalar("hi")], [scalar("n"), scalar(2)]],
        "flat": True,
    }
    event = {
        "kind": "detail",
        "index": 1000,
        "time": WHEN,
        "cost": 2.0,
        "method": "__main__.func",
        "thread": "MainThread",
        "tid": 7,
        "daemon": False,
        "args": {"t": "tuple", "kind": "tuple", "len": 1, "items": [query]},
        "kwargs": {"t": "dict", "kind": "dict", "len": 0, "items": []},
        "return": scalar("ok"),
        "depth": 3,
        "shown_depth": 1,
    }
    assert text(TT.render(event)) == [
        RULE,
        "\u2713 2026-04-19 11:35:38:953 index=1000 method=__main__.func cost=2.000000ms is_exp=False result={",
        "  EXPR: args",
        "  TYPE: <class 'tuple'>",
        "  VALUE: ({'q': 'hi', 'n': 2},)",
        "  EXPR: return_obj",
        "  TYPE: <class 'str'>",
        "  VALUE: 'ok'",
        "}",
        "thread=MainThread tid=7 daemon=False",
    ]


def gil_report(view: str) -> dict[str, Any]:
    cumulative = {
        "thread_name": "MainThread",
        "tid": 11,
        "takecnt": 20,
        "hold_all": 1_000_000_000,
        "holdavg": 50_000_000,
        "take_all": 2_000_000,
        "takeavg": 100_000,
        "drogcnt": 20,
        "drog_all": 40_000,
        "dropavg": 2_000,
    }
    interval = {
        "tid": 11,
        "name": "MainThread",
        "takes": 4,
        "wait_total_ms": 0.4,
        "wait_avg_ms": 0.1,
        "holds": 4,
        "hold_total_ms": 200.0,
        "hold_avg_ms": 50.0,
        "drops": 4,
        "drop_total_ms": 0.008,
        "drop_avg_ms": 0.002,
        "wait_max_ms": 0.2,
        "hold_max_ms": 51.0,
    }
    return {
        "action": "report",
        "elapsed": 5.0,
        "interval": 5.0,
        "view": view,
        "cumulative": [cumulative],
        "threads": [interval],
        "threads_hidden": 0,
        "warnings": [],
        "warnings_more": 0,
        "threads_uncounted": 0,
    }


def test_gilstat_shows_the_seeds_cumulative_ns_columns() -> None:
    lines = text(GILSTAT.render(gil_report("cumulative")))
    assert lines[0] == "GIL since start (ns), at 5 s:"
    assert lines[1].split() == [
        "thread_name",
        "takecnt",
        "hold_all",
        "holdavg",
        "take_all",
        "takeavg",
        "drogcnt",
        "drog_all",
        "dropavg",
        "tid",
    ]
    assert lines[2].split() == [
        "MainThread",
        "20",
        "1000000000",
        "50000000",
        "2000000",
        "100000",
        "20",
        "40000",
        "2000",
        "11",
    ]


def test_gilstat_per_interval_view_is_in_ms() -> None:
    lines = text(GILSTAT.render(gil_report("interval")))
    assert lines[0] == "GIL, 0 s to 5 s:"
    assert "wait ms (avg)" in lines[1] and "hold ms (avg)" in lines[1]
    assert "200.0 (50.00)" in lines[2]


def test_perf_says_what_it_wrote_where_how_it_stopped_and_how_to_open_it() -> None:
    event = {
        "format": "speedscope",
        "path": "/tmp/profile.\x1b[2Jjson",  # the path is ours, but may hold what a user typed
        "samples": 412,
        "seconds": 4.1,
        "stopped": "interrupted",
        "errors": 3,
        "open": "open https://www.speedscope.app and load /tmp/profile.json",
    }
    assert text(PERF.render(event)) == [
        "speedscope profile written to /tmp/profile.\\x1b[2Jjson",
        "412 samples in 4.1 s, stopped by Ctrl-C, 3 sampling errors",
        "open https://www.speedscope.app and load /tmp/profile.json",
    ]
    quiet = dict(event, format="svg", path="/tmp/flame.svg", errors=0, stopped="a reason of a newer client")
    assert text(PERF.render(quiet))[:2] == [
        "flame graph written to /tmp/flame.svg",
        "412 samples in 4.1 s, stopped a reason of a newer client",
    ]


def test_stack_tasks_show_the_await_chain_and_who_awaits_whom() -> None:
    frames = [{"name": name, "file": "/srv/app.py", "line": line} for name, line in (("middle", 5), ("leaf", 2))]
    child = {"name": "child", "coro": "middle", "frames": frames, "awaits": [], "awaited_by": ["parent"]}
    parent = {"name": "parent", "coro": "outer", "frames": frames[:1], "awaits": ["child"], "awaited_by": []}
    loop = {"loop": "<loop>", "running": True, "tasks": [child, parent]}
    assert text(STACK.render({"loops": [loop], "threads": {}})) == [
        "Loop <loop> [running]: 2 task(s)",
        "  Task child (middle)",
        "    awaited by task parent",
        '      File "/srv/app.py", line 5, in middle',
        '      File "/srv/app.py", line 2, in leaf',
        "  Task parent (outer)",
        "    awaits task child",
        '      File "/srv/app.py", line 5, in middle',
    ]


def test_stack_tasks_at_one_place_are_one_entry_that_counts_them() -> None:
    frames = [{"name": "worker", "file": "/srv/app.py", "line": 6}]
    odd = {"name": "stuck", "coro": "stuck", "frames": frames, "awaits": [], "awaited_by": []}
    crowd = dict(odd, name="Task-7", coro="worker", alike=49_999, alike_names=["Task-8", "Task-9\x1b[2J"])
    loop = {"loop": "<loop>", "running": True, "tasks": [odd, crowd]}
    event = {"loops": [loop], "threads": {}, "not_shown": 1_203, "not_read": 3}
    assert text(STACK.render(event)) == [
        "Loop <loop> [running]: 50,001 task(s) at 2 place(s) shown",
        "  Task stuck (stuck)",
        '      File "/srv/app.py", line 6, in worker',
        "  Task Task-7 (worker)",
        "    and 49,999 other task(s) at the same place: Task-8, Task-9\\x1b[2J, and 49,997 more",
        '      File "/srv/app.py", line 6, in worker',
        "1,200 more task(s) at places not shown (the first 2 places read are shown: -n N for more)",
        "3 more task(s) not read (reading stops after 2 s)",
    ]


@pytest.mark.parametrize("spec", [WATCH, TT])
def test_target_text_in_the_new_fields_is_escaped(spec: Any) -> None:
    hostile = "\x1b]52;c;aWQK\x07"
    event = {
        "kind": "call" if spec is WATCH else "detail",
        "index": 1,
        "time": WHEN,
        "cost": 1.0,
        "method": hostile,
        "thread": hostile,
        "tid": 1,
        "daemon": False,
        "values": [{"expr": hostile, "value": {"t": hostile, "v": 1}}],
        "args": {"t": hostile, "kind": "tuple", "len": 0, "items": []},
        "kwargs": {"t": "dict", "kind": "dict", "len": 0, "items": []},
    }
    rendered = "\n".join(text(spec.render(event)))
    assert "\x1b" not in rendered and "\x07" not in rendered and "\\x1b]52" in rendered


def test_an_event_of_a_newer_kind_is_one_line() -> None:
    """A filter that raised, reported once by the agent, reaches the user as one line (escaped)."""
    once = {"kind": "filter_error", "error": "filter 'args[9]' raised IndexError: no match from now on\x1b[2J"}
    for spec in (WATCH, TRACE, TT):
        assert text(spec.render(once)) == ["filter 'args[9]' raised IndexError: no match from now on\\x1b[2J"]


def test_trace_title_escapes_what_a_hostile_agent_sends() -> None:
    hostile = "\x1b]0;pwned\x07"
    event = {
        "kind": "trace",
        "index": 1,
        "time": WHEN,
        "cost": 1.0,
        "thread": hostile,
        "tid": hostile,
        "daemon": hostile,
        "root": node(hostile, 1.0, "/x/" + hostile, 1),
    }
    rendered = "\n".join(text(TRACE.render(event)))
    assert "\x1b" not in rendered and "\x07" not in rendered and rendered.count("\\x1b]0;pwned") == 5
