"""``source`` and ``reload`` of a module zipimport loaded (a ``.pyz``, ``PYTHONPATH=lib.zip``): its code's
file name is ``ARCHIVE/member``, which was "cannot read ...: Not a directory". In process."""

from __future__ import annotations

import importlib
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from agent_harness import InProcessAgent

from flight_profiler.commands.source.client import SPEC as SOURCE
from flight_profiler.services.context import CommandFailed
from flight_profiler.services.location import read_source_file

MODULE = "fp_zipped_mod"
TEXT = "def total(items):\n    return sum(items)\n"


@pytest.fixture
def archive(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    path = str(tmp_path / "lib.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/%s.py" % MODULE, TEXT)
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/bomb.py", "#" * 100_000)  # inflates far past what is read
    monkeypatch.syspath_prepend(path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    importlib.import_module("pkg.%s" % MODULE)
    yield path
    for name in ("pkg.%s" % MODULE, "pkg"):
        sys.modules.pop(name, None)


def test_a_member_of_an_archive_is_read_and_bounded(archive: str) -> None:
    assert read_source_file("%s/pkg/%s.py" % (archive, MODULE), 1000) == TEXT.encode()
    assert len(read_source_file("%s/pkg/bomb.py" % archive, 1000) or b"") == 1001  # the limit + 1: too big
    with pytest.raises(CommandFailed, match=r"cannot read pkg/missing\.py from the archive"):
        read_source_file("%s/pkg/missing.py" % archive, 1000)


def test_a_path_through_a_file_that_is_no_archive_says_so(tmp_path: Any) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("not a zip")
    with pytest.raises(CommandFailed, match="from the archive"):
        read_source_file(str(plain / "x.py"), 1000)


def test_source_shows_a_function_loaded_from_an_archive(archive: str) -> None:
    agent = InProcessAgent()
    try:
        events, end = agent.run("source", SOURCE.parse_line("pkg.%s total" % MODULE))
    finally:
        agent.close()
    assert end["status"] == "ok", end
    (event,) = events
    assert event["file"] == "%s/pkg/%s.py" % (archive, MODULE)
    assert [line.rstrip("\n") for line in event["lines"]] == TEXT.splitlines() and event["status"] == "matches"


def test_an_archive_with_a_huge_directory_is_refused_before_it_is_read(
    archive: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zipfile keeps a ZipInfo per entry of the archive (~500 bytes each) in the target, for one member's
    source: a zipapp of 200,000 files cost ~100 MB there."""
    from flight_profiler.services import location

    monkeypatch.setattr(location, "MAX_DIRECTORY", 100)  # this archive's directory is ~160 bytes
    with pytest.raises(CommandFailed, match=r"its directory of 3 entries \(\d+ bytes\) is more than the 100 bytes"):
        read_source_file("%s/pkg/%s.py" % (archive, MODULE), 1000)
    monkeypatch.setattr(location, "MAX_DIRECTORY", 1000)
    assert read_source_file("%s/pkg/%s.py" % (archive, MODULE), 1000) == TEXT.encode()
