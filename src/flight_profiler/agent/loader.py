"""Load the agent's modules from one bundle file (runs in the target).

The client writes every in-target module's source into a single file in the
private directory; the bootstrap reads that one file and hands it here. Why:
- the target needs nothing installed and never reads the CLI's install, so a
  target of another uid or in another mount namespace works the same;
- one read instead of a path search per module: on a target whose threads
  fight for the GIL, every file-system call costs a GIL round trip;
- nothing is added to ``sys.path``, ``sys.meta_path`` or ``sys.path_hooks``: the
  package's ``__path__`` holds one private key, and the finder for it sits in
  ``sys.path_importer_cache`` under that key only, removed again by ``unload``.

This module is executed by the bootstrap before the package exists, so it uses
no relative imports, and it imports nothing that is not already loaded in every
interpreter (``importlib.util`` and friends cost dozens of file reads).
Stdlib only, Python 3.8 syntax.
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

    Bundle = Dict[str, Tuple[str, str, bool]]  # module name -> (file name, source, is_package)

# the frozen import machinery every interpreter has loaded at start-up
_bootstrap: Any = sys.modules["_frozen_importlib"]
_ModuleSpec: Any = _bootstrap.ModuleSpec


class BundleFinder:
    """A path-entry finder and loader for one bundle; reached only through our package's __path__."""

    def __init__(self, bundle: Bundle, key: str) -> None:
        self.bundle = bundle
        self.key = key

    def find_spec(self, fullname: str, target: Any = None) -> Optional[Any]:
        entry = self.bundle.get(fullname)
        if entry is None:
            return None
        spec = _ModuleSpec(fullname, self, origin=entry[0], is_package=entry[2])
        if entry[2]:
            spec.submodule_search_locations = [self.key]
        spec.has_location = True
        return spec

    def invalidate_caches(self) -> None:
        pass

    def create_module(self, spec: Any) -> Optional[types.ModuleType]:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        filename, source, _ = self.bundle[module.__name__]
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own code


def install(bundle: Bundle, alias: str, key: str) -> types.ModuleType:
    """Register the finder under ``key`` and import the root package ``alias``."""
    finder = BundleFinder(bundle, key)
    sys.path_importer_cache[key] = finder  # submodules are found through the package's __path__
    package: types.ModuleType = _bootstrap.module_from_spec(finder.find_spec(alias))
    sys.modules[alias] = package
    finder.exec_module(package)
    return package


def unload(alias: str, key: str) -> None:
    """Forget our modules and the finder: detach leaves no trace in the import system."""
    sys.path_importer_cache.pop(key, None)
    for name in [n for n in list(sys.modules) if n == alias or n.startswith(alias + ".")]:
        sys.modules.pop(name, None)
