"""The one validator every numeric option goes through: ranges, inf/nan, one clear message."""

from __future__ import annotations

import pytest

from flight_profiler.cli import registry
from usage_errors import parse_error


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("trace m f -et 1e309", "trace: -et must be a finite number, got '1e309' (see 'help trace')"),
        ("trace m f -et nan", "-et must be a finite number, got 'nan'"),
        ("trace m f -i=-inf", "-i must be a finite number, got '-inf'"),
        ("trace m f -i -1", "-i must not be negative, got '-1'"),
        ("trace m f -d 0", "-d must be at least 1 or -1 (no limit), got '0'"),
        ("trace m f --budget 101", "--budget must be between 0 and 100, got '101'"),
        ("mem diff --interval 0", "mem: -i must be > 0 and <= 3600, got '0'"),
        ("mem diff -i 3600.5", "-i must be > 0 and <= 3600, got '3600.5'"),
        ("mem top --limit 0", "--limit must be 1..10000, got '0'"),
        ("getglobal m x -x 0", "-x must be 1..4 or -1 (deepest), got '0'"),
        ("getglobal m x -x two", "-x must be a whole number, got 'two'"),
        ("vmtool -a getInstances -c m C -n -2", "-n must be at least 1 or -1 (all), got '-2'"),
        ("watch m f --rate inf", "--rate must be a finite number, got 'inf'"),
        ("watch m f -n 1.5", "-n must be a whole number, got '1.5'"),
        ("tt -t m f --max-mb 0", "--max-mb must be a positive number, got '0'"),
        ("tt -i 1" + "0" * 60, "-i must be a whole number"),  # never int() of a huge string
        ("perf -r 0", "-r must be 1..10000, got '0'"),
        ("thread -i 60001", "-i must be 0..60000, got '60001'"),
        ("thread -n 0", "-n must be at least 1, got '0'"),
        ("sc Order -n 10001", "-n must be 1..10000, got '10001'"),
        ("logger --name x --level DEBUG --for nan", "--for must be a finite number, got 'nan'"),
        ("logger --for 0", "--for must be > 0 and <= "),
        ("line m f 3 -n 1.5", "-n must be a whole number, got '1.5'"),
        ("stack m f -n 0", "-n must be at least 1, got '0'"),
        ("perf -d nan", "-d must be a finite number, got 'nan'"),
        ("stack 0", "pid must be at least 1, got '0'"),
        ("torch profile m f --wait -0.5", "--wait must not be negative, got '-0.5'"),
        ("gilstat on 1 2 -d inf", "-d must be a finite number, got 'inf'"),
        ("gilstat on 1 nan", "must be a finite number, got 'nan'"),
    ],
)
def test_bad_numbers_get_one_clear_line(line: str, message: str) -> None:
    error = parse_error(line)
    assert message in error and "\n" not in error


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("getglobal m x -x -1", "expand", -1),
        ("getglobal m x -x 4", "expand", 4),
        ("mem diff -i 3600", "interval", 3600.0),
        ("mem diff -i 0.5", "interval", 0.5),
        ("trace m f -et 0", "entrance_time", 0.0),
        ("trace m f -d -1", "depth", -1),
        ("vmtool -a getInstances -c m C -n -1", "limit", -1),
        ("watch m f --rate 0", "rate", 0.0),
    ],
)
def test_edges_of_the_ranges_are_accepted(line: str, key: str, value: float) -> None:
    words = line.split()
    spec = registry.get(words[0])
    assert spec is not None
    assert spec.parse(words[1:])[key] == value
