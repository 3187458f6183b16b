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


@functools.lru_cache(maxsize=2)  # a group attach writes it once per target: read our files once
def text(with_code: bool = False) -> str:
    """The bundle file's content, NUL-separated: our interpreter's ``importlib.util.MAGIC_NUMBER``
    in hex (or empty: no code in this bundle), then per module: name, file name,
    ``1``/``0`` (is a package), source, and the module's code object marshalled, in hex, or empty.

    Python source cannot contain NUL, so one ``str.split`` in the target parses it: no
    compile of a 350 KB literal on the agent's way to its first answer (on a target
    whose threads fight for the GIL every 5 ms of our CPU costs a round trip in their queue).

    ``with_code`` (a target of our interpreter's minor version): what every first answer runs
    (the loader and ``agent.loader.START_MODULES``), and what most commands load next
    (``COMMON_MODULES``), comes compiled, so that the target
    unmarshals it in about 1 ms instead of compiling it (20-30 ms of its CPU with the GIL held:
    ``bench/agent_compile.py``). The bootstrap uses it only where the target's magic number is
    the first field and it runs without ``-O`` (what the code was compiled for); else it
    compiles the source, as for any other version.

    The client writes it through ``privsep`` (as the target's user, relative to
    the private directory's descriptor, exclusively then renamed): never by path
    as root in a directory another user controls.
    """
    if not with_code:
        return compose("", {})
    return compose(_magic_hex(), _precompiled(_collected()))


def compose(magic: str, precompiled: dict[str, str]) -> str:
    """``text``'s layout with ``precompiled`` (module name -> marshalled code in hex) compiled for the
    interpreter whose magic number is ``magic`` (hex): ours, or a target's own (``attach/compiler``)."""
    fields: list[str] = [magic]
    for name, (filename, source, is_package) in _collected().items():
        if "\0" in source or "\0" in filename:
            raise ValueError("NUL in %s: it cannot be bundled" % filename)
        fields += [name, filename, "1" if is_package else "0", source, precompiled.get(name, "")]
    return "\0".join(fields)


@functools.lru_cache(maxsize=1)
def to_compile() -> tuple[list[str], bytes]:
    """The modules that come compiled (``_precompiled``'s) and, for ``attach/compiler``'s program,
    their file names and sources, NUL-separated, in UTF-8."""
    modules = _collected()
    names = _wanted(modules)
    return names, _joined(modules, names)


def _joined(modules: dict[str, tuple[str, str, bool]], names: list[str]) -> bytes:
    """File name, source, file name, source, ... of ``names``, NUL-separated, in UTF-8."""
    return "\0".join(part for name in names for part in modules[name][:2]).encode("utf-8")


@functools.lru_cache(maxsize=1)
def _collected() -> dict[str, tuple[str, str, bool]]:
    return collect()


@functools.lru_cache(maxsize=2)
def data(with_code: bool = False) -> bytes:
    """The bundle file's bytes (``text`` in UTF-8, all ASCII: see tests/unit/test_bundle_code.py), encoded
    once per client: 1 MB of fresh pages to fault in, which a group attach paid again for every target."""
    return text(with_code).encode("utf-8")


def size(with_code: bool = False) -> int:
    """The bundle file's size in bytes (as ``privsep`` writes it): the bootstrap reads it in one go."""
    return len(data(with_code))


def _magic_hex() -> str:
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER.hex()


def _precompiled(modules: dict[str, tuple[str, str, bool]]) -> dict[str, str]:
    """The loader, START_MODULES and COMMON_MODULES as the target would compile them (no inherited
    flags, no -O), marshalled, in hex: from our package's bytecode cache (an install compiles it);
    where some of it is not there (an editable install, a zipapp: 25-30 ms to compile it, every run
    of the client), from the bytecode we compiled and kept in an earlier run (``codecache``)."""
    names = _wanted(modules)
    cached = {name: _from_our_cache(*modules[name][:2]) for name in names}
    if all(code is not None for code in cached.values()):
        return {name: bytes(code).hex() for name, code in cached.items() if code is not None}
    from . import codecache

    entry, magic = _our_entry(_joined(modules, names)), _magic_hex()
    kept = codecache.load(entry, len(names)) if entry else None
    if kept is not None and kept[0] == magic:
        return dict(zip(names, kept[1]))
    codes = {name: (cached[name] or _marshalled(*modules[name][:2])).hex() for name in names}
    if entry:
        codecache.store(entry, magic, [codes[name] for name in names])
    return codes


def _our_entry(sources: bytes) -> str:
    """Our own compile of ``sources`` (``_joined``'s layout): its entry in ``codecache``, as for a
    target of our uid on our interpreter; "" if there is none to name."""
    import sys

    from . import codecache

    version = (sys.version_info[0], sys.version_info[1])
    try:
        return codecache.key(os.geteuid(), version, os.stat(sys.executable), sources)
    except OSError:
        return ""


def _wanted(modules: dict[str, tuple[str, str, bool]]) -> list[str]:
    """The loader, START_MODULES and COMMON_MODULES, those of them in ``modules``."""
    from ..agent.loader import COMMON_MODULES, START_MODULES

    wanted = [ALIAS + ".agent.loader"] + [ALIAS + name for name in START_MODULES + COMMON_MODULES]
    return [name for name in wanted if name in modules]


def _marshalled(filename: str, source: str) -> bytes:
    """``filename``'s code, marshalled: from its bytecode cache where that is current, else compiled here."""
    import marshal

    cached = _from_our_cache(filename, source)
    if cached is not None:
        return cached
    return marshal.dumps(compile(source, filename, "exec", dont_inherit=True, optimize=0))


def _from_our_cache(filename: str, source: str) -> bytes | None:
    """``filename``'s code, marshalled, from its bytecode cache where that is current (about 1 ms for the
    start set against 25-30 ms to compile it); None if not. The cache is ours (our package's
    ``__pycache__``), read as our imports read it; nothing is written."""
    import marshal
    from importlib.util import MAGIC_NUMBER, cache_from_source

    try:
        with open(cache_from_source(filename), "rb") as fh:
            data = fh.read()
        info = os.stat(filename)
        header = (MAGIC_NUMBER, 0, int(info.st_mtime) & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF)
        fields = (data[:4], *(int.from_bytes(data[at : at + 4], "little") for at in (4, 8, 12)))
        if fields == header and marshal.loads(data[16:]).co_filename == filename:  # noqa: S302 - our own cache
            return data[16:]  # (0: a timestamp-checked cache; the file name: the code says where it is)
    except (OSError, ValueError, EOFError, TypeError, AttributeError):
        pass  # no cache, an old one, or one we cannot read
    return None
