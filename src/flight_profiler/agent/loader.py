"""Load the agent's modules from one bundle file (runs in the target).

The client writes every in-target module's source into a single file in the
private directory; the bootstrap reads that one file and hands it here. Why:
- the target needs nothing installed and never reads the CLI's install, so a
  target of another uid or in another mount namespace works the same;
- one read instead of a path search per module: on a target whose threads
  fight for the GIL, every file-system call costs a GIL round trip;
- the import system is not used at all: our modules are executed here, and
  their ``import`` statements reach ``Importer.import_`` through a builtins dict
  of their own. So nothing is added to ``sys.path``, ``sys.meta_path``,
  ``sys.path_hooks`` or ``sys.path_importer_cache``, and a target started with
  ``-X importtime`` or ``-v`` gets no line on its stderr from the agent: those
  lines come from the import system's find-and-load, which we never enter for
  our modules nor for the C modules we need (``_json``, ``_socket``: loaded
  through ``_imp`` directly, as the import system itself would).

This module is executed by the bootstrap before the package exists, so it uses
no relative imports, and it imports nothing that is not already loaded in every
interpreter (``importlib.util`` and friends cost dozens of file reads).
Stdlib only, Python 3.8 syntax.
"""

# No ``from __future__ import annotations`` and no module that may be missing (``types`` is not
# loaded at start-up on 3.8): the bootstrap runs this file through the import statement's
# fast path only (sys, builtins: always loaded), so nothing reaches -X importtime's output.
# Annotations are strings for the same reason: they are never evaluated.
import builtins
import sys

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    Bundle = Dict[str, Tuple[str, str, bool]]  # module name -> (file name, source, is_package)
else:
    ModuleType = type(sys)  # types.ModuleType, without importing types

# the frozen import machinery every interpreter has loaded at start-up
_bootstrap: "Any" = sys.modules["_frozen_importlib"]
_imp: "Any" = sys.modules["_imp"]
_ModuleSpec: "Any" = _bootstrap.ModuleSpec
# taken now: the target may replace builtins.__import__ later (it is still the import system's entry)
_real_import: "Any" = builtins.__import__

# named as ours: under -v CPython prints "# destroy NAME" when the detach frees it
_FUTURE = ModuleType(__name__.partition(".")[0] + ".__future__")
_FUTURE.annotations = None  # type: ignore[attr-defined]

# stdlib modules the agent imported without the import system (it never unloads them: see unload)
LOADED_QUIETLY: "list[str]" = []

# What every first answer executes (the server, a session, the protocol, the quick-command path),
# relative to the alias. ``install`` compiles them all in one C call: the GIL is dropped only at
# bytecode boundaries, so on a target whose N busy threads queue for it (a wait of up to N switch
# intervals each time we let go) the agent's start costs one wait instead of one per 5 ms of compiling.
START_MODULES = (
    "",
    ".agent",
    ".agent.server",
    ".services",
    ".services.realthreads",
    ".services.context",
    ".agent.session",
    ".protocol",
    ".protocol.framing",
    ".protocol.messages",
    ".protocol.version",
    ".agent.registry",
    ".commands",
    ".services.usercode",
)
# What most commands' first answers load after the start (getglobal, watch, stack, sc, module...):
# loaded when first imported, as every other module; shipped compiled with the start set where the
# client can (attach/bundle.py), so that a target of the client's version does not compile them.
COMMON_MODULES = (
    ".protocol.requests",
    ".services.capture",
    ".services.describe",
    ".services.expr",
    ".services.resolve",
    ".services.location",
    ".services.hooks",
)


class Importer:
    """Executes our modules from the bundle and answers their ``import`` statements."""

    def __init__(self, bundle: "Bundle", alias: "str") -> None:
        self.bundle = bundle
        self.alias = alias
        # our modules' builtins: the target's, with our import function
        self.builtins: dict[str, Any] = dict(builtins.__dict__)
        self.builtins["__import__"] = self.import_
        self.ready: set[str] = set()  # fully executed: no lock needed to hand them out
        self.compiled: dict[str, Any] = {}  # code compiled ahead (START_MODULES), used once
        self.lock = _ReentrantLock()

    def import_(
        self,
        name: "str",
        globals: "Optional[Dict[str, Any]]" = None,
        locals: "Any" = None,
        fromlist: "Sequence[str]" = (),
        level: "int" = 0,
    ) -> "ModuleType":
        """``__import__`` for our modules: ours from the bundle, the rest without find-and-load if possible."""
        fromlist = fromlist or ()  # None for a plain ``import x``
        fullname = _resolve(name, globals, level) if level else name
        if not self._ours(fullname):
            if fullname == "__future__" and fullname not in sys.modules:
                return _FUTURE  # ``from __future__ import annotations`` acts at compile time; the import is a formality
            return quiet_import(name, globals, fromlist, level, fullname)
        module = self.load(fullname)
        if fromlist:
            for item in fromlist:
                if item != "*" and not hasattr(module, item) and fullname + "." + item in self.bundle:
                    self.load(fullname + "." + item)  # ``from . import session``: a submodule
            return module
        return self.load(fullname.partition(".")[0]) if level == 0 else module

    def _ours(self, fullname: "str") -> "bool":
        return fullname == self.alias or fullname.startswith(self.alias + ".")

    def load(self, fullname: "str") -> "ModuleType":
        """Our module ``fullname`` (and its parents), executed from the bundle on first use.

        One lock for all our modules (the import system has one per module): a job
        thread must not get a module another thread is still executing.
        """
        module = sys.modules.get(fullname) if fullname in self.ready else None
        if module is not None:
            return module
        with self.lock:
            return self._load(fullname)

    def _load(self, fullname: str) -> ModuleType:
        module = sys.modules.get(fullname)
        if module is not None:
            return module  # ready, or being executed by this very thread (modules importing each other)
        entry = self.bundle.get(fullname)
        if entry is None:
            raise ImportError("no module named %r in the agent bundle" % fullname, name=fullname)
        parent_name, _, child = fullname.rpartition(".")
        parent = self.load(parent_name) if parent_name else None
        filename, source, is_package = entry
        module = ModuleType(fullname)
        module.__file__ = filename
        module.__package__ = fullname if is_package else parent_name
        module.__builtins__ = self.builtins  # type: ignore[attr-defined]
        if is_package:
            module.__path__ = []
        sys.modules[fullname] = module  # before running it: our modules import each other
        try:
            code = self.compiled.pop(fullname, None) or compile(source, filename, "exec")
            exec(code, module.__dict__)  # noqa: S102 - our own code
        except BaseException:
            sys.modules.pop(fullname, None)
            raise
        if parent is not None:
            setattr(parent, child, module)
        self.ready.add(fullname)
        return module

    def adopt(self, fullname: "str", namespace: "Dict[str, Any]") -> "None":
        """Make ``namespace`` (this very module, run by the bootstrap) our module ``fullname``.

        The agent imports ``.loader`` too: compiling it a second time would cost the
        agent's start milliseconds of CPU, each 5 ms a wait for the GIL on a busy target.
        """
        if fullname not in self.bundle or fullname in sys.modules:
            return
        parent_name, _, child = fullname.rpartition(".")
        parent = self.load(parent_name)
        module = ModuleType(fullname)
        module.__dict__.update((k, v) for k, v in namespace.items() if k not in ("__name__", "__builtins__"))
        module.__file__ = self.bundle[fullname][0]
        module.__package__ = parent_name
        sys.modules[fullname] = module
        setattr(parent, child, module)
        self.ready.add(fullname)


def _original_thread_function(name: str) -> "Any":
    """``_thread.<name>`` as the interpreter made it, even in a gevent/eventlet-patched target."""
    thread: Any = sys.modules["_thread"]
    value = getattr(thread, name)
    if type(value) is type(len):
        return value
    for library in ("gevent.monkey", "eventlet.patcher"):
        try:
            found = _original_from(library, name)
        except Exception:  # noqa: BLE001, S112 - not loaded, or not patched by that library
            continue
        if type(found) is type(len):
            return found
    return value


def _original_from(library: str, name: str) -> "Any":
    patcher: Any = sys.modules[library]
    if library == "gevent.monkey":
        return patcher.get_original("_thread", name)
    return getattr(patcher.original("_thread"), name)


class _ReentrantLock:
    """A reentrant lock on the original ``_thread`` lock (``threading`` may be missing or patched)."""

    def __init__(self) -> None:
        self._lock = _original_thread_function("allocate_lock")()
        self._get_ident = _original_thread_function("get_ident")
        self._owner: Optional[int] = None
        self._depth = 0

    def __enter__(self) -> None:
        me = self._get_ident()
        if self._owner != me:
            self._lock.acquire()
            self._owner = me
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


def _resolve(name: "str", globals: "Optional[Dict[str, Any]]", level: "int") -> "str":
    """The absolute name of a relative import made from ``globals``' module."""
    package = (globals or {}).get("__package__") or ""
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        raise ImportError("attempted relative import beyond top-level package")
    base = bits[0]
    return "%s.%s" % (base, name) if name else base


def quiet_import(
    name: "str", globals: "Optional[Dict[str, Any]]", fromlist: "Sequence[str]", level: "int", fullname: "str"
) -> "ModuleType":
    """A stdlib import that prints nothing under ``-X importtime``/``-v`` where that is possible.

    Loaded modules come from ``sys.modules`` (what the import system does, minus its
    lock dance); missing built-in and extension modules are created through ``_imp``.
    Anything else goes to the real import (it may print: pure-Python modules the
    agent needs are loaded in every target we met, see ARCHITECTURE.md).
    """
    module = sys.modules.get(fullname)
    if module is None and "." not in fullname and not fromlist_needs_import(None, fromlist):
        module = _load_c_module(fullname)
    if module is None or _initializing(module) or fromlist_needs_import(module, fromlist):
        return _real_import(name, globals, None, fromlist, level)  # type: ignore[no-any-return]
    if fromlist:
        return module
    top = sys.modules.get(fullname.partition(".")[0])
    return top if top is not None else _real_import(name, globals, None, fromlist, level)


def fromlist_needs_import(module: "Optional[ModuleType]", fromlist: "Sequence[str]") -> "bool":
    """``from m import x`` where ``x`` is a submodule not yet loaded: leave that to the import system."""
    if module is None:
        return bool(fromlist)
    return any(item != "*" and not hasattr(module, item) for item in fromlist)


def _initializing(module: "ModuleType") -> "bool":
    """Being imported by another thread right now: the import system's lock makes us wait for it."""
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _load_c_module(name: "str") -> "Optional[ModuleType]":
    """Create a missing built-in or extension module the way the import system does, silently."""
    if name in sys.builtin_module_names:
        spec = _ModuleSpec(name, None, origin="built-in")
        create, execute = _imp.create_builtin, _imp.exec_builtin
    else:
        path = _extension_path(name)
        if path is None:
            return None
        spec = _ModuleSpec(name, None, origin=path)
        create, execute = _imp.create_dynamic, _imp.exec_dynamic
    _imp.acquire_lock()  # the import system's global lock: no other thread creates it meanwhile
    try:
        module = sys.modules.get(name)
        if module is None:
            module = create(spec)
            module.__spec__ = spec
            sys.modules[name] = module  # as the import system would: a later import by the target gets it
            execute(module)
            LOADED_QUIETLY.append(name)
    finally:
        _imp.release_lock()
    return module


def _extension_path(name: "str") -> "Optional[str]":
    """``lib-dynload/<name><suffix>`` of this interpreter, if it exists (one stat per suffix)."""
    external: Any = sys.modules.get("_frozen_importlib_external")
    posix: Any = sys.modules.get("posix")
    if external is None or posix is None:
        return None
    for directory in sys.path:
        if not directory.endswith("lib-dynload"):
            continue
        for suffix in external.EXTENSION_SUFFIXES:
            path = "%s/%s%s" % (directory, name, suffix)
            try:
                posix.stat(path)
            except OSError:
                continue
            return path
    return None


def install(
    bundle: "Bundle", alias: "str", key: "str" = "", compiled: "Optional[Dict[str, Any]]" = None
) -> "ModuleType":
    """Execute the root package ``alias`` from ``bundle``; its submodules load on first import.

    ``compiled``: START_MODULES' code, compiled by the bootstrap in the same C call as this
    module (one wait for the GIL instead of two on a busy target); compiled here if absent. From
    a bundle with code it holds COMMON_MODULES' too, used when they are first imported.
    """
    importer = Importer(bundle, alias)
    if compiled is None:
        names = [alias + suffix for suffix in START_MODULES if alias + suffix in bundle]
        files, sources = [bundle[name][0] for name in names], [bundle[name][1] for name in names]
        # one C call (dict, zip, map, compile): no bytecode boundary, so no GIL switch, in between
        compiled = dict(zip(names, map(compile, sources, files, ["exec"] * len(names))))
    importer.compiled = compiled
    package = importer.load(alias)
    importer.adopt(alias + ".agent.loader", globals())
    package._fp_load = importer.load  # type: ignore[attr-defined]  # the bootstrap loads the server with it
    package._fp_bundle = bundle  # type: ignore[attr-defined]  # emptied by unload
    package._fp_loaded_quietly = LOADED_QUIETLY  # type: ignore[attr-defined]  # for the hello's notes
    # the process these modules serve: a child forked from it inherits them without their threads, and
    # the bootstrap of an attach to that child replaces them (agent/server.forsake_inherited)
    package._fp_owner = sys.modules["posix"].getpid()  # type: ignore[attr-defined]
    return package


def unload(alias: "str", key: "str" = "", sweep: "bool" = False) -> None:
    """Forget our modules: detach leaves no trace of them in the import system.

    The C modules loaded for us (``LOADED_QUIETLY``) stay: an extension module cannot
    be unloaded (its shared object stays mapped) and the target may have picked it up.
    ``sweep``: nothing of ours was handed to the application, so our namespaces are
    emptied once our threads are out of them (``agent/sweep``).
    """
    sweeper = _sweeper(alias) if sweep else None  # loaded while the bundle is still there
    bundle = getattr(sys.modules.get(alias), "_fp_bundle", None)
    if isinstance(bundle, dict):
        bundle.clear()  # our sources (~200 KB) go now, not at the target's next full gc collection
    names: List[str] = [n for n in list(sys.modules) if n == alias or n.startswith(alias + ".")]
    modules = [sys.modules.pop(name, None) for name in names]
    if sweeper is not None:
        sweeper.sweep_when_idle([m for m in modules if m is not None], alias, globals())


def _sweeper(alias: "str") -> "Any":
    """``agent.sweep``, compiled only for a detach that sweeps (most attaches never get there, and
    compiling our modules is most of the CPU an agent's start costs its target); None when this
    loader is not the agent's own copy (a client-side import: never empty those) or it cannot load."""
    if not __name__.startswith(alias + "."):
        return None
    try:
        return sys.modules[alias]._fp_load(alias + ".agent.sweep")
    except BaseException:  # noqa: BLE001 - no sweep: the garbage collector frees our modules later
        return None
