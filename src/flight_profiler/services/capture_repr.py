"""What ``capture`` shows by a repr: bytes, arrays, objects with a ``__repr__`` of their own, and
everything below the ``-x`` depth, written with a character budget (runs in the target).

Split from ``capture`` so that the agent's first answer compiles only what it runs: a value made
of plain scalars, strings and containers within the depth never gets here, and this half of the
capture is compiled on the first value that does (compiling our modules is most of the CPU an
agent's start costs its target: bench/RESULTS-fleet.md).
"""

from __future__ import annotations

import sys

from .capture import _BYTES, _PLAIN, _array_kind, _contained, _cut, _head, _int_text, _kind, _type_name
from .describe import describe_error as _describe

TYPE_CHECKING = False  # typing is not imported at run time: each import costs the target a GIL round trip
if TYPE_CHECKING:
    from typing import Any

    from .capture import CaptureOptions


def repr_node(obj: Any, options: CaptureOptions) -> dict[str, Any]:
    node: dict[str, Any] = {"t": _type_name(obj)}
    try:
        if isinstance(obj, _BYTES):
            return _bytes_node(obj, node, options.str_limit)
        if _own_repr(obj):
            return _user_repr_node(obj, node, options.str_limit)
        text = _Text(options.str_limit, options)
        _write(obj, text, [])
        node["r"] = text.value()
        if text.full and _kind(obj) != "object":
            node["len"] = len(obj)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__/__len__ is shown, not raised
        return {"t": node["t"], "error": "repr failed: %s" % _describe(exc)}
    return node


def _user_repr_node(obj: Any, node: dict[str, Any], limit: int) -> dict[str, Any]:
    text = _call_repr(obj)
    node["r"] = _cut(text, limit)
    if len(text) > limit:
        node["cut"] = [limit, len(text)]
    return node


def _call_repr(obj: Any) -> str:
    """``repr()`` of an object with a ``__repr__`` of its own: the one place user code makes
    a repr. Its cost is the user's (it may build a huge string before we cut it)."""
    text = repr(obj)
    return text if isinstance(text, str) else "<invalid repr>"


def _bytes_node(obj: Any, node: dict[str, Any], limit: int) -> dict[str, Any]:
    """bytes, bytearray and memoryview from their head and tail: never a copy of the whole."""
    view = obj if isinstance(obj, memoryview) else None
    if view is not None:
        try:
            obj = view.cast("B")  # a flat view of the same memory, no copy
        except (TypeError, ValueError):  # not C-contiguous: its repr is all we can afford
            node["r"] = "<memory nbytes=%d>" % view.nbytes
            return node
    total = len(obj)
    shown = max(1, limit // 4)  # a byte takes up to 4 characters in a repr
    if total <= shown:
        node["r"] = _bytes_repr(node["t"], bytes(obj[:shown]), view)
        return node
    head = bytes(obj[: shown * 3 // 4])
    tail = bytes(obj[total - (shown - len(head)) :])
    node["r"] = _bytes_repr(node["t"], head, view, tail)
    node["cut"] = [len(head) + len(tail), total]
    node["unit"] = "bytes"
    return node


def _bytes_repr(type_name: str, head: bytes, view: Any, tail: bytes | None = None) -> str:
    body = repr(head) if tail is None else "%s ... %s" % (repr(head), repr(tail))
    if view is not None:
        return "<memory %s>" % body
    if type_name == "bytes":
        return body
    return "%s(%s)" % (type_name, body)


# The reprs the writer below reproduces, by the __repr__ a type ends up with; a subclass that
# keeps its base's repr is written like it. Types of ``collections`` are added on first use,
# by name, if the target imported that module (we never import it).
_WRITTEN: dict[Any, tuple[str, str]] = {
    object.__repr__: ("object", ""),
    int.__repr__: ("int", ""),
    bool.__repr__: ("bool", ""),
    float.__repr__: ("float", ""),
    type(None).__repr__: ("none", ""),
    str.__repr__: ("str", ""),
    bytes.__repr__: ("bytes", ""),
    bytearray.__repr__: ("bytes", ""),
    memoryview.__repr__: ("bytes", ""),
    list.__repr__: ("list", ""),
    tuple.__repr__: ("tuple", ""),
    dict.__repr__: ("dict", ""),
    set.__repr__: ("set", ""),
    frozenset.__repr__: ("set", "frozenset"),
}
_LEARNED: list[bool] = []
_WRITE_DEPTH = 64  # nesting the writer follows: deeper lists would exhaust the recursion limit
_COLLECTIONS = (("deque", "list"), ("OrderedDict", "dict"), ("defaultdict", "dict"), ("Counter", "dict"))


def _written(obj: Any) -> tuple[str, str] | None:
    """(kind, prefix) when the writer reproduces ``obj``'s repr; None for a ``__repr__`` of its own."""
    if not _LEARNED:
        _learn_collections()
    try:
        return _WRITTEN.get(type(obj).__repr__)
    except TypeError:  # an unhashable __repr__ attribute: certainly the user's own
        return None


def _learn_collections() -> None:
    module = sys.modules.get("collections")
    if module is None:
        return
    for name, kind in _COLLECTIONS:
        klass = getattr(module, name, None)
        if isinstance(klass, type):
            _WRITTEN[klass.__repr__] = (kind, name)
    _LEARNED.append(True)


def _own_repr(obj: Any) -> bool:
    return _written(obj) is None and not _array_kind(obj)


class _Text:
    """A repr under construction with a character budget: writing stops when it is spent."""

    def __init__(self, limit: int, options: CaptureOptions) -> None:
        self.options = options  # whose budget bounds the program's code the writer runs
        self.parts: list[str] = []
        self.left = limit
        self.full = False

    def add(self, text: str) -> bool:
        if self.left <= 0:
            self.full = True
            return False
        if len(text) > self.left:
            text = text[: self.left]
            self.full = True
        self.parts.append(text)
        self.left -= len(text)
        return not self.full

    def value(self) -> str:
        text = "".join(self.parts)
        return text + "..." if self.full else text


def _write(obj: Any, text: _Text, stack: list[int]) -> None:
    """Append ``obj``'s repr to ``text`` while the budget lasts; the same text as ``repr()``
    for the builtin types, at a cost bounded by the budget."""
    if text.left <= 0:
        text.full = True
        return
    if id(type(obj)) in _PLAIN:
        _write_any(obj, text, stack)
        return
    failed = _contained(_write_any, (obj, text, stack), obj, text.options)
    if failed is not None:
        text.add("<%s: %s>" % (failed["t"], failed["error"]))


def _write_any(obj: Any, text: _Text, stack: list[int]) -> None:
    written = _written(obj)
    array = _array_kind(obj)
    if array:
        text.add(_array_text(obj, array))
    elif written is None:
        text.add(_call_repr(obj))
    elif written[0] in ("list", "tuple", "set", "dict"):
        _write_container(obj, written, text, stack)
    else:
        text.add(_scalar_text(obj, written[0], text.left))


def _scalar_text(obj: Any, kind: str, left: int) -> str:
    if kind == "int":
        return _int_text(obj)
    if kind == "str":
        return str.__repr__(obj[: left + 1])  # a cut string overflows the budget: text marks it
    if kind == "bytes":
        return str(_bytes_node(obj, {"t": _type_name(obj)}, left + 4)["r"])
    return str(repr(obj))  # object.__repr__, floats, bools, None: short


def _write_container(obj: Any, written: tuple[str, str], text: _Text, stack: list[int]) -> None:
    kind, prefix = written
    opener, closer = {"list": ("[", "]"), "tuple": ("(", ")"), "set": ("{", "}"), "dict": ("{", "}")}[kind]
    if id(obj) in stack or len(stack) >= _WRITE_DEPTH:
        text.add(opener + "..." + closer)  # what repr() shows for a container inside itself
        return
    total = len(obj)
    if kind == "set" and not total:
        text.add("%s()" % (prefix or "set"))
        return
    if prefix:
        text.add(prefix + "(")
    text.add(opener)
    stack.append(id(obj))
    try:
        _write_items(obj.items() if kind == "dict" else obj, kind == "dict", text, stack)
    finally:
        stack.pop()
    if kind == "tuple" and total == 1:
        text.add(",")
    text.add(closer + (")" if prefix else ""))


def _write_items(items: Any, pairs: bool, text: _Text, stack: list[int]) -> None:
    # at most one item per character left: items are never read past what can be shown
    for index, item in enumerate(_head(items, max(1, text.left))):
        if index and not text.add(", "):
            return
        if pairs:
            _write(item[0], text, stack)
            if not text.add(": "):
                return
            item = item[1]
        _write(item, text, stack)
        if text.full:
            return


def _array_text(obj: Any, kind: str) -> str:
    """Shape, dtype (and device) read as attributes: the values are never converted."""
    fields = ["shape=%s" % _attribute_text(obj, "shape"), "dtype=%s" % _attribute_text(obj, "dtype")]
    if kind == "tensor":
        fields.append("device=%s" % _attribute_text(obj, "device"))
    return "<%s %s>" % (_type_name(obj), " ".join(fields))


def _attribute_text(obj: Any, name: str) -> str:
    try:
        value = getattr(obj, name)
        if isinstance(value, tuple):  # shapes: numpy's tuple, torch.Size
            return "(%s)" % ", ".join(str(int(dim)) for dim in value[:32]) + ("..." if len(value) > 32 else "")
        return str(value)[:64]
    except Exception:  # noqa: BLE001 - a fake or broken array: say so, never raise
        return "?"
