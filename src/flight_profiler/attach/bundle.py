"""Write the in-target modules into one bundle file for the agent (client side).

See ``agent/loader`` for why the target reads one file instead of our install.
The in-target set is: the package root, ``agent/``, ``services/``, ``protocol/``
and each command's ``agent.py`` and ``model.py``. Nothing else of ours (rich,
prompt_toolkit, the CLI) can reach the target this way.
"""

from __future__ import annotations

import functools
import os

from .bootstrap import ALIAS, package_dir

IN_TARGET_PACKAGES = ("agent", "services", "protocol")
COMMAND_FILES = ("__init__.py", "agent.py", "model.py")


def collect(root: str | None = None) -> dict[str, tuple[str, str, bool]]:
    """module name -> (file name, source, is_package) for the whole in-target set."""
    root = root or package_dir()
    bundle: dict[str, tuple[str, str, bool]] = {}
    _add(bundle, root, "__init__.py")
    for package in IN_TARGET_PACKAGES:
        for name in sorted(os.listdir(os.path.join(root, package))):
            if name.endswith(".py"):
                _add(bundle, root, os.path.join(package, name))
    _add(bundle, root, os.path.join("commands", "__init__.py"))
    commands = os.path.join(root, "commands")
    for command in sorted(os.listdir(commands)):
        for name in COMMAND_FILES:
            if os.path.isfile(os.path.join(commands, command, name)):
                _add(bundle, root, os.path.join("commands", command, name))
    return bundle


def _add(bundle: dict[str, tuple[str, str, bool]], root: str, relative: str) -> None:
    path = os.path.join(root, relative)
    parts = relative[: -len(".py")].split(os.sep)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    with open(path, encoding="utf-8") as fh:
        bundle[".".join([ALIAS, *parts])] = (path, fh.read(), is_package)


@functools.lru_cache(maxsize=1)  # a group attach writes it once per target: read our files once
def text() -> str:
    """The bundle file's content: name, file name, ``1``/``0`` (is a package), source, ... NUL-separated.

    Python source cannot contain NUL, so one ``str.split`` in the target parses it: no
    compile of a 350 KB literal on the agent's way to its first answer (on a target
    whose threads fight for the GIL every 5 ms of our CPU costs a round trip in their queue).

    The client writes it through ``privsep`` (as the target's user, relative to
    the private directory's descriptor, exclusively then renamed): never by path
    as root in a directory another user controls.
    """
    fields: list[str] = []
    for name, (filename, source, is_package) in collect().items():
        if "\0" in source or "\0" in filename:
            raise ValueError("NUL in %s: it cannot be bundled" % filename)
        fields += [name, filename, "1" if is_package else "0", source]
    return "\0".join(fields)


@functools.lru_cache(maxsize=1)
def size() -> int:
    """The bundle file's size in bytes (UTF-8, as ``privsep`` writes it): the bootstrap reads it in one go."""
    return len(text().encode("utf-8"))
