"""The helper's ``link`` operation: a group's targets share one bundle file by hard links, never a file
that is not the client's own private regular file of the expected size (``attach/privsep.op_link``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flight_profiler.attach.privsep import Refused, Workspace


@pytest.fixture
def workspace(tmp_path: Path):  # type: ignore[no-untyped-def]
    space = Workspace(str(tmp_path / "flight_profiler-test"), in_process=True)
    assert space.op_open_dir(create=True)[0]["exists"] is True
    yield space
    space.close()


def _names(space: Workspace) -> list[str]:
    return sorted(os.listdir(space.directory))


def test_a_bundle_the_client_wrote_is_linked_not_copied(workspace: Workspace) -> None:
    workspace.op_write("agent-1-2-3.bundle", data=b"bundle bytes")
    assert workspace.op_link("agent-1-2-3.bundle", "agent-1-4-5.bundle", size=12)[0] == {"linked": True}
    first, second = (
        os.stat(os.path.join(workspace.directory, name)) for name in ("agent-1-2-3.bundle", "agent-1-4-5.bundle")
    )
    assert (first.st_ino, first.st_dev) == (second.st_ino, second.st_dev)
    assert stat.S_IMODE(second.st_mode) == 0o600
    assert _names(workspace) == ["agent-1-2-3.bundle", "agent-1-4-5.bundle"]  # no temporary name left


@pytest.mark.parametrize("problem", ["size", "symlink", "fifo", "missing", "mode"])
def test_anything_else_at_the_source_is_not_linked(workspace: Workspace, problem: str, tmp_path: Path) -> None:
    source = os.path.join(workspace.directory, "agent-1-2-3.bundle")
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"bundle bytes")
    os.chmod(outside, 0o600)
    size = 12
    if problem == "size":
        workspace.op_write("agent-1-2-3.bundle", data=b"bundle bytes")
        size = 13
    elif problem == "symlink":
        os.symlink(outside, source)
    elif problem == "fifo":
        os.mkfifo(source, 0o600)
    elif problem == "mode":
        workspace.op_write("agent-1-2-3.bundle", data=b"bundle bytes")
        os.chmod(source, 0o644)
    before = _names(workspace)
    assert workspace.op_link("agent-1-2-3.bundle", "agent-1-4-5.bundle", size=size)[0] == {"linked": False}
    assert _names(workspace) == before  # nothing made, the temporary name removed
    assert outside.read_bytes() == b"bundle bytes"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_file_of_another_user_is_not_linked(workspace: Workspace) -> None:
    workspace.op_write("agent-1-2-3.bundle", data=b"bundle bytes")
    os.chown(os.path.join(workspace.directory, "agent-1-2-3.bundle"), 65534, 65534)
    assert workspace.op_link("agent-1-2-3.bundle", "agent-1-4-5.bundle", size=12)[0] == {"linked": False}
    assert _names(workspace) == ["agent-1-2-3.bundle"]


def test_names_stay_in_the_directory(workspace: Workspace) -> None:
    with pytest.raises(Refused):
        workspace.op_link("../x.bundle", "agent-1-4-5.bundle", size=1)
    with pytest.raises(Refused):
        workspace.op_link("agent-1-2-3.bundle", "sub/agent-1-4-5.bundle", size=1)
