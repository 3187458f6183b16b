"""Turn live objects into a JSON tree the client renders (runs in the target).

Every value a command shows goes through ``capture``: depth-limited (``-x``),
item-limited (``-v`` raises the limit, never removes it), strings cut to head and
tail, cycles and failing ``__repr__``/``__getattr__`` contained.

What a capture costs is bounded by what the preview shows, not by the object:
containers are read from their head (never copied whole), bytes-like objects and
strings from their head and tail, ints too long for ``str()`` are shown by their
size, numpy arrays and torch tensors by shape and dtype (read as attributes: neither
library is imported), and everything below the ``-x`` depth goes through a repr
writer with a character budget instead of ``repr()``. Only objects with their own
``__repr__`` get a real ``repr()`` (``capture_repr._call_repr``), whose result is cut.
That repr half lives in ``capture_repr``, compiled on first use.

The program's own code that a capture may run (a ``__repr__``, a container
subclass's ``__len__``/``__iter__``/``items``, a property, a ``__getattribute__``)
runs only for objects whose type is not one of the plain builtins (``_PLAIN``),
and each such object is captured through ``usercode.call_contained``: in an
agent thread bounded by the command's budget (``CaptureOptions.budget_ms``,
``--budget-ms``), so that a ``__repr__`` that never returns is stopped and shown
as a placeholder that says why; after one overrun the program's code is not run
again for the rest of the command (``CaptureOptions.off``). In an application
thread the hooked call's own ``Guard`` bounds the whole capture.

Node shapes (``t`` is always the type name):
  {"t", "v"}                       scalar (None, bool, int, float, str) - "v" is the value
  {"t", "r"}                       object shown by its (possibly cut) repr
  {"t", "kind": "list"|"tuple"|"set"|"dict", "len", "items", "more"}
                                   a named tuple's also "fields": the shown items' names
  {"t", "kind": "object", "attrs": {name: node}, "more"}
  plus "cut": [shown, total] on cut strings/reprs ("unit": "bytes" when counted in bytes),
  "cap": the item limit that -v could not lift, "cycle": true, "error": text
"""

from __future__ import annotations

import sys

from ..protocol.requests import RENDER_DEFAULTS
from . import usercode
from .describe import TYPE_DICT, TYPE_MRO, class_name, instance_dict, is_a, module_of, module_text, short, type_name
from .describe import describe_error as _describe

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping


MAX_DEPTH = 8  # what -x -1 ("infinite") means: a hard stop for huge graphs
STR_LIMIT = 256
STR_LIMIT_VERBOSE = 8192
ITEM_LIMIT = 20
ITEM_LIMIT_VERBOSE = 2000
# str() of an int is quadratic in its length, and 3.11+ refuses ints over 4300 digits
# (sys.get_int_max_str_digits): past that, ints are shown by their size on every version.
INT_DIGITS_LIMIT = 4300
_LOG10_2 = 0.30102999566398120
_INT_BITS_LIMIT = int(INT_DIGITS_LIMIT / _LOG10_2)
_SCALARS = (bool, int, float, type(None))
_BYTES = (bytes, bytearray, memoryview)
# Types whose capture runs none of the program's code (their items may: each is looked at in turn).
# Compared by id: ``type(obj) in a_set`` would hash the type, and a metaclass may define __hash__.
_MODULE_TYPE = type(sys)  # types is not imported at every start
_PLAIN = frozenset(map(id, _SCALARS + _BYTES + (str, dict, list, tuple, set, frozenset)))


class CaptureOptions:
    def __init__(
        self,
        expand: int = RENDER_DEFAULTS["expand"],
        verbose: bool = RENDER_DEFAULTS["verbose"],
        raw: bool = RENDER_DEFAULTS["raw"],
        budget_ms: float | None = None,
    ) -> None:
        self.depth = MAX_DEPTH if expand < 0 else min(expand, MAX_DEPTH)
        self.raw = raw
        self.verbose = verbose
        self.str_limit = STR_LIMIT_VERBOSE if verbose else STR_LIMIT
        self.item_limit = ITEM_LIMIT_VERBOSE if verbose else ITEM_LIMIT
        # one object's capture in an agent thread (usercode.call_contained)
        self.budget_ms = usercode.CAPTURE_BUDGET_MS if budget_ms is None else float(budget_ms)
        self.off: str | None = None  # set once the program's code overran: it is not run again

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> CaptureOptions:
        return cls(
            expand=int(request.get("expand", RENDER_DEFAULTS["expand"])),
            verbose=bool(request.get("verbose", RENDER_DEFAULTS["verbose"])),
            raw=bool(request.get("raw", RENDER_DEFAULTS["raw"])),
            budget_ms=usercode.budget_of(request, usercode.CAPTURE_BUDGET_MS),
        )


def capture(obj: Any, options: CaptureOptions) -> dict[str, Any]:
    """Return the JSON tree of ``obj``."""
    try:
        if options.raw:
            node: dict[str, Any] = _contained(_repr_node, (obj, options), obj, options)
            return node
        return _capture(obj, options, options.depth, set())
    except Exception as exc:  # noqa: BLE001 - a hostile __len__/__iter__ is shown, not raised
        return {"t": _safe_type_name(obj), "error": _describe(exc)}


def bounded_repr(obj: Any, limit: int) -> str:
    """``repr()`` text of at most about ``limit`` characters, at a cost bounded by ``limit``
    (the console's trailing value): what ``-r`` shows, with the cut stated."""
    options = CaptureOptions(raw=True)
    options.str_limit = limit
    node = capture(obj, options)
    if "error" in node:
        return "<%s: %s>" % (node["t"], node["error"])
    text = str(node["r"])
    if "cut" in node:
        return "%s  (cut: %d of %d %s shown)" % (text, node["cut"][0], node["cut"][1], node.get("unit", "chars"))
    if "len" in node:
        return "%s  (len %d)" % (text, node["len"])
    return text


def _contained(fn: Callable[..., Any], args: tuple[Any, ...], obj: Any, options: CaptureOptions) -> Any:
    """``fn(*args)``, which captures ``obj`` and may run its type's code: bounded in agent threads
    (``usercode.call_contained``); what it cannot show becomes a node with the reason."""
    if options.off is not None:
        return {"t": _safe_type_name(obj), "error": options.off}
    value, error, overran = usercode.call_contained(fn, args, options.budget_ms)
    if overran:
        options.off = "not shown: the program's code ran over the budget (%g ms) for an earlier value: " % (
            options.budget_ms
        )
        options.off += "not run again in this command"
    if value is not usercode.FAILED:
        return value
    if overran:
        reason = "not shown: its own code (__repr__, __len__, a property...) ran over the budget of %g ms " % (
            options.budget_ms
        )
        return {"t": _safe_type_name(obj), "error": reason + "and was stopped (--budget-ms)"}
    return {"t": _safe_type_name(obj), "error": "repr failed: %s" % _describe(error or Exception())}


def _capture(obj: Any, options: CaptureOptions, depth: int, seen: set[int], item: bool = False) -> dict[str, Any]:
    if id(type(obj)) in _PLAIN:  # (scalars, strings, containers: the common values pay for no test below)
        return _capture_any(obj, options, depth, seen, item)
    if is_a(obj, _MODULE_TYPE) and (depth <= 0 or type(obj) is not _MODULE_TYPE):
        # described from its dict, not by repr() (which asks a module for __loader__ and __file__: a PEP 562
        # __getattr__ runs for a missing one) nor, for a module subclass, by isinstance() in _capture_any
        # (which asks for __class__): a LazyLoader module answers any such question by running its import
        return {"t": _type_name(obj), "r": module_text(obj)}
    node: dict[str, Any] = _contained(_capture_any, (obj, options, depth, seen, item), obj, options)
    return node


def _capture_any(obj: Any, options: CaptureOptions, depth: int, seen: set[int], item: bool = False) -> dict[str, Any]:
    if isinstance(obj, _SCALARS):
        return _scalar(obj)
    if isinstance(obj, str):
        return _string(obj, options.str_limit)
    if depth <= 0 and item and not isinstance(obj, _BYTES) and not _array_kind(obj) and _kind(obj) == "object":
        return _last_item(obj, options, seen)
    if depth <= 0 or isinstance(obj, _BYTES) or _array_kind(obj):
        return _repr_node(obj, options)
    if id(obj) in seen:
        return {"t": _type_name(obj), "cycle": True}
    seen.add(id(obj))
    try:
        return _container(obj, options, depth, seen)
    except Exception as exc:  # noqa: BLE001 - a hostile __len__/__iter__, a dict resized meanwhile
        return {"t": _type_name(obj), "error": _describe(exc)}
    finally:
        seen.discard(id(obj))


def _last_item(obj: Any, options: CaptureOptions, seen: set[int]) -> dict[str, Any]:
    """An object of the program's in a container at the last ``-x`` level: its attributes by repr.

    The reference's ``-x`` counts levels of objects, not of the containers around them: at ``-x 1``
    a list of instances shows ``[Connection({'host': 'queue', ...}), ...]`` (the seeds' getInstances
    examples, with or without ``-e``), not ``[<__main__.Connection object at 0x...>, ...]``. An object
    with a ``__repr__`` of its own is still shown by it.
    """
    attrs = _attributes(obj, options.item_limit)
    if attrs is None or id(obj) in seen or _own_repr(TYPE_MRO(type(obj))):
        return _repr_node(obj, options)  # (a repr of the program's own is what its authors chose to show)
    seen.add(id(obj))
    try:
        return _object(obj, attrs, options, 1, seen)
    finally:
        seen.discard(id(obj))


def _container(obj: Any, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    kind = _kind(obj)
    if kind == "dict":
        return _mapping(obj, options, depth, seen)
    if kind in ("list", "tuple", "set"):
        return _sequence(obj, kind, options, depth, seen)
    attrs = _attributes(obj, options.item_limit)
    if attrs is None:
        return _repr_node(obj, options)
    return _object(obj, attrs, options, depth, seen)


def _kind(obj: Any) -> str:
    if isinstance(obj, dict):
        return "dict"
    if isinstance(obj, list):
        return "list"
    if isinstance(obj, tuple):
        return "tuple"
    if isinstance(obj, (set, frozenset)):
        return "set"
    if _is_stdlib(obj, "collections", "deque") or _is_stdlib(obj, "array", "array"):
        return "list"
    return "object"


def _is_stdlib(obj: Any, module: str, name: str) -> bool:
    """``obj`` is an instance of ``module.name`` (by name: the module is never imported)."""
    return any(_named(klass, module, name) for klass in TYPE_MRO(type(obj)))


def _named(klass: type, module: str, name: str) -> bool:
    """``klass`` is ``module.name``, read through type's own getters: a metaclass may shadow ``__name__``,
    ``__module__`` or ``__mro__`` with properties, the program's code (one that looped cost every
    capture of its instances the whole budget, and the value was lost)."""
    return class_name(klass) == name and module_of(klass) == module


def _head(iterable: Any, limit: int) -> list[Any]:
    """The first ``limit`` items, never a copy of the whole container.

    zip stops at ``limit`` in C; no itertools: 3.14 does not preload it, and importing it
    would print under the target's ``-X importtime``/``-v``.
    """
    return [item for _, item in zip(range(limit), iterable)]


def _sized(obj: Any, node: dict[str, Any], shown: int, options: CaptureOptions) -> dict[str, Any]:
    total = len(obj)
    node["len"] = total
    node["more"] = max(0, total - shown)
    if node["more"] and options.verbose:
        node["cap"] = options.item_limit
    return node


def _mapping(obj: Any, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    pairs = _head(obj.items(), options.item_limit)
    items = [
        [_capture(key, options, depth - 1, seen), _capture(value, options, depth - 1, seen, True)]
        for key, value in pairs
    ]
    return _sized(obj, {"t": _type_name(obj), "kind": "dict", "items": items}, len(items), options)


def _sequence(obj: Any, kind: str, options: CaptureOptions, depth: int, seen: set[int]) -> dict[str, Any]:
    items = [_capture(value, options, depth - 1, seen, True) for value in _head(obj, options.item_limit)]
    node = {"t": _type_name(obj), "kind": kind, "items": items}
    if kind == "tuple" and type(obj) is not tuple:
        names = _field_names(obj)
        if names is not None:
            node["fields"] = [short(name) for name in names[: len(items)]]  # the program's names, cut
    return _sized(obj, node, len(items), options)


def _field_names(obj: Any) -> tuple[str, ...] | None:
    """A named tuple's field names, or None: ``collections.namedtuple``'s ``_fields``, a struct
    sequence's (``os.stat_result``, 3.10+) ``__match_args__``.

    Read from the class dicts, so none of the program's code runs; used only when they are plain
    strings, one per item, so that a class attribute that merely shares the name shows no wrong labels.
    """
    for klass in TYPE_MRO(type(obj)):
        if klass is tuple:
            return None
        own = TYPE_DICT(klass)
        for attribute in ("_fields", "__match_args__"):
            names = own.get(attribute)
            if names is not None:
                plain = type(names) is tuple and all(type(name) is str for name in names)
                # tuple's own length: a __len__ of the program's is not asked
                return names if plain and len(names) == tuple.__len__(obj) else None
    return None


def _object(
    obj: Any, attrs: tuple[list[str], int], options: CaptureOptions, depth: int, seen: set[int]
) -> dict[str, Any]:
    names, total = attrs
    shown: dict[str, Any] = {}
    unset = 0
    for name in names[: options.item_limit]:
        try:
            value = getattr(obj, name)
        except AttributeError as exc:
            if _is_slot(obj, name):
                unset += 1  # a slot never assigned holds nothing: a PosixPath showed 8 lines of errors
                continue
            shown[short(name)] = {"t": "error", "error": _describe(exc)}
            continue
        except Exception as exc:  # noqa: BLE001 - a failing property is shown, not raised
            shown[short(name)] = {"t": "error", "error": _describe(exc)}
            continue
        shown[short(name)] = _capture(value, options, depth - 1, seen)  # the name: the program's, cut
    more = max(0, total - len(shown) - unset)
    return {"t": _type_name(obj), "kind": "object", "attrs": shown, "more": more}


def _is_slot(obj: Any, name: str) -> bool:
    """``name`` is one of the ``__slots__`` of ``obj``'s classes (read from their dicts)."""
    for klass in TYPE_MRO(type(obj)):
        slots = TYPE_DICT(klass).get("__slots__", ())
        if name in ([slots] if isinstance(slots, str) else slots):
            return True
    return False


def _attributes(obj: Any, limit: int) -> tuple[list[str], int] | None:
    """The first instance attributes worth expanding and how many there are, or None for
    objects best shown by repr."""
    own = instance_dict(obj)  # through the class's slot: a __dict__ property is the program's code
    if isinstance(obj, type) or (callable(obj) and own is None):
        return None
    names: list[str] = []
    total = 0
    if isinstance(own, dict):
        total = len(own)
        names.extend(key for key in _head(own, limit) if isinstance(key, str))
    mro = TYPE_MRO(type(obj))
    for klass in mro:
        slots = TYPE_DICT(klass).get("__slots__", ())
        for slot in [slots] if isinstance(slots, str) else slots:
            if slot not in names and slot not in ("__dict__", "__weakref__"):
                names.append(slot)
                total += 1
    if not total and _own_repr(mro):
        return None  # objects with their own repr and no state: the repr says more
    return names, total


def _own_repr(mro: tuple[type, ...]) -> bool:
    """Whether a class of ``mro`` before ``object`` defines ``__repr__`` (read from their dicts)."""
    return next((klass for klass in mro if "__repr__" in TYPE_DICT(klass)), object) is not object


def _scalar(obj: Any) -> dict[str, Any]:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return {"t": "float", "r": repr(obj)}
    if isinstance(obj, int) and not isinstance(obj, bool) and obj.bit_length() > 53:
        return {"t": _type_name(obj), "r": _int_text(obj)}  # JSON readers lose precision past 2**53
    return {"t": _type_name(obj), "v": obj}


def _int_text(value: int) -> str:
    bits = value.bit_length()
    if bits <= _INT_BITS_LIMIT:
        try:
            return int.__repr__(value)
        except ValueError:
            pass  # the app lowered sys.set_int_max_str_digits: shown by size like the huge ones
    return "<int of %s bits, about %s digits>" % (_thousands(bits), _thousands(int(bits * _LOG10_2) + 1))


def _thousands(number: int) -> str:
    return f"{number:,}"


def _string(text: str, limit: int) -> dict[str, Any]:
    node: dict[str, Any] = {"t": _type_name(text), "v": _cut(text, limit)}
    if len(text) > limit:
        node["cut"] = [limit, len(text)]
    return node


def _repr_node(obj: Any, options: CaptureOptions) -> dict[str, Any]:
    """The node of a value shown by its repr (``capture_repr``: compiled on the first such value).

    Commands that capture in the application's threads (watch, tt, line) import ``capture_repr``
    in their job's thread first: a hooked call never compiles it, nor waits for our loader's lock.
    """
    from . import capture_repr

    return capture_repr.repr_node(obj, options)


# numpy arrays and torch tensors, recognised by the name and module of a class in their MRO
_ARRAYS = (("ndarray", "numpy", "ndarray"), ("Tensor", "torch", "tensor"))


def _array_kind(obj: Any) -> str:
    """ "ndarray", "tensor" or "": by class names only, so neither library is imported."""
    for klass in TYPE_MRO(type(obj)):
        for name, module, kind in _ARRAYS:
            if _named(klass, module, name):
                return kind
    return ""


def _cut(text: str, limit: int) -> str:
    """Keep the head and the tail: the end of a long message is often the useful part."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    return "%s ... %s" % (text[:head], text[-tail:])


def _type_name(obj: Any) -> str:
    return type_name(type(obj))


_QUALNAME = type.__dict__["__qualname__"].__get__  # type's own: never a metaclass's property
_MODULE = type.__dict__["__module__"].__get__


def _safe_type_name(obj: Any) -> str:
    """The type's name for a placeholder, read without running any of the program's code (the
    object's own code just failed or overran: its metaclass gets no second chance)."""
    kind = type(obj)
    try:
        name, module = _QUALNAME(kind), _MODULE(kind)
    except Exception:  # noqa: BLE001 - a __module__ that is not there
        return "<type at 0x%x>" % id(kind)
    if type(name) is not str:
        return "<type at 0x%x>" % id(kind)
    if type(module) is not str or module == "builtins":
        return short(name)
    return short(module + "." + name)
