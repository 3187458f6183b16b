"""The MCP server's default output directory (mcp/server.private_output_dir): nothing is made on a way
another user could redirect (root under sudo with that user's HOME, whose ~/.cache is a link)."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from flight_profiler.mcp.server import private_output_dir


def test_it_is_made_private_under_a_cache_of_ours(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    os.chmod(str(tmp_path), 0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = private_output_dir()
    assert made == str(tmp_path / "cache" / "flight_profiler")
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the home directory to another user")
def test_nothing_is_made_where_another_users_link_leads(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(mode=0o755)
    elsewhere.mkdir(mode=0o755)
    os.symlink(str(elsewhere), str(home / ".cache"))
    os.lchown(str(home / ".cache"), 65534, 65534)
    os.chown(str(home), 65534, 65534)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(OSError, match="refusing to write"):
        private_output_dir()
    assert os.listdir(str(elsewhere)) == []  # makedirs followed the link and made root's directory there
