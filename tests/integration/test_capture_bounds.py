"""Captures in a real target cost what the preview shows: peak RSS stays flat, big ints and
numpy/torch-like objects are summarised (their library is never imported or needed)."""

from __future__ import annotations

import pytest

from inproc_client import client
from interpreters import find_interpreters
from support import RunningTarget, target_fixture

INTERPRETERS = find_interpreters()
FEW_MB = 8 * 1024  # kB: a full repr of BIG would add 800 MB, a copy 200 MB


target = target_fixture("capture_target.py")


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had."""
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def only(result: object) -> dict[str, object]:
    results = result.results  # type: ignore[attr-defined]
    assert result.returncode == 0 and len(results) == 1, result  # type: ignore[attr-defined]
    return results[0]  # type: ignore[no-any-return]


def test_a_200_mb_bytearray_costs_no_memory(target: RunningTarget) -> None:
    only(client(target.pid, "getglobal __main__ HUGE_INT"))  # attach first: the agent's own memory is not ours
    before = peak_rss_kb(target.pid)
    for options in ("", " -v", " -r", " -x 4"):
        value = only(client(target.pid, "getglobal __main__ BIG" + options))["value"]
        assert value["cut"][1] == 200 * 2**20 and value["r"].startswith("bytearray(b'\\x01")  # type: ignore[index]
    assert peak_rss_kb(target.pid) - before < FEW_MB


def test_a_watched_100_mb_argument_costs_no_memory(target: RunningTarget) -> None:
    only(client(target.pid, "getglobal __main__ HUGE_INT"))
    before = peak_rss_kb(target.pid)
    result = client(target.pid, "watch __main__ consume -n 3 -x 2")
    calls = [event for event in result.results if event["kind"] == "call"]
    assert result.returncode == 0 and len(calls) == 3, result
    args = calls[0]["values"][0]["value"]
    assert args["items"][0]["cut"][1] == 100 * 2**20
    assert peak_rss_kb(target.pid) - before < FEW_MB


def test_big_ints_by_size(target: RunningTarget) -> None:
    for command in ("getglobal __main__ HUGE_INT", "getglobal __main__ HUGE_INT -r"):
        assert only(client(target.pid, command))["value"] == {
            "t": "int",
            "r": "<int of 16,610 bits, about 5,001 digits>",
        }


def test_arrays_and_tensors_by_shape(target: RunningTarget) -> None:
    assert only(client(target.pid, "getglobal __main__ ARRAY"))["value"]["r"] == (  # type: ignore[index]
        "<numpy.ndarray shape=(2000, 3) dtype=float32>"
    )
    assert only(client(target.pid, "getglobal __main__ TENSOR -x 3"))["value"]["r"] == (  # type: ignore[index]
        "<torch.Tensor shape=(8, 16) dtype=torch.bfloat16 device=cuda:1>"
    )


@pytest.mark.any_interpreter  # the client's rendering
def test_verbose_states_its_cap_in_text(target: RunningTarget) -> None:
    text = client(target.pid, "getglobal __main__ BIG_DICT -v", "--no-color", json_output=False).stdout
    assert "2,000 shown of 100,000; -v shows at most 2,000" in text


@pytest.mark.any_interpreter  # the schema check
def test_the_new_fields_match_the_documented_schema(target: RunningTarget) -> None:
    from json_schemas import problems

    for command in ("getglobal __main__ BIG", "getglobal __main__ BIG_DICT -v", "getglobal __main__ BIG_DICT -r"):
        for record in client(target.pid, command).records:
            assert problems(record) == [], (command, problems(record))


def test_the_console_value_of_a_huge_object_is_bounded(target: RunningTarget) -> None:
    only(client(target.pid, "getglobal __main__ HUGE_INT"))
    # the console's first use loads its half of the agent and the stdlib it needs (codeop, ...): a few MB
    # on 3.14, paid once, before the measure; what this test is about is a copy or repr of BIG (200+ MB)
    only(client(target.pid, 'console -c "1"'))
    before = peak_rss_kb(target.pid)
    value = only(client(target.pid, 'console -c "import __main__; __main__.BIG"'))["value"]
    assert str(value).endswith("(cut: 16384 of 209715200 bytes shown)")
    assert only(client(target.pid, 'console -c "import __main__; __main__.HUGE_INT"'))["value"] == (
        "<int of 16,610 bits, about 5,001 digits>"
    )
    assert peak_rss_kb(target.pid) - before < FEW_MB
