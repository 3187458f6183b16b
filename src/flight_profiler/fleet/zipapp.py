"""This install's flight_profiler as one file (a zipapp), for pods that do not have it.

Only our own package goes in (no rich, no prompt_toolkit, no py-spy): in a pod the client
runs with ``--json``, which needs neither, and every command that goes through the agent works.
``stack`` without ``-a`` and ``perf`` need py-spy in the image. The archive's ``__main__``
unpacks the package into a fresh private directory (``mkdtemp``: 0700, a random name) because
the attach reads the agent's sources as files, runs the CLI from there, and removes it.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

from ..attach.bootstrap import package_dir

MAIN = """\
import os, shutil, sys, tempfile, zipfile
def _run():
    home = tempfile.mkdtemp(prefix="flight_profiler-")
    try:
        with zipfile.ZipFile(sys.argv[0]) as archive:
            archive.extractall(home, [n for n in archive.namelist() if n.startswith("flight_profiler/")])
        sys.path.insert(0, home)
        from flight_profiler.cli.main import entry
        entry()
    finally:
        shutil.rmtree(home, ignore_errors=True)
_run()
"""


def build(directory: str | None = None) -> str:
    """Write the zipapp into ``directory`` (default: a new private temporary one); its path."""
    where = directory or tempfile.mkdtemp(prefix="flight_profiler-zipapp-")
    path = os.path.join(where, "flight_profiler.pyz")
    root = package_dir()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", MAIN)
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    full = os.path.join(folder, name)
                    archive.write(full, os.path.join("flight_profiler", os.path.relpath(full, root)))
    return path
