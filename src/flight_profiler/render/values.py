"""Render the agent's value trees (see ``services/capture``) as text."""

from __future__ import annotations

from .safe import safe_block, safe_line

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import Any

WIDTH = 100
INDENT = "  "


def one_line(node: dict[str, Any]) -> str:
    """The value on one line, Python-literal style."""
    if "error" in node:
        return "<%s: %s>" % (safe_line(node.get("t", "?")), safe_line(node["error"]))
    if node.get("cycle"):
        return "<cycle: %s>" % safe_line(node.get("t"))
    if "v" in node:
        return _scalar(node)
    if "r" in node:
        return safe_block(node["r"]) + _cut_note(node)  # a repr may span lines (tables, arrays); controls are escaped
    kind = node.get("kind")
    if kind == "dict":
        body = ", ".join("%s: %s" % (one_line(k), one_line(v)) for k, v in node["items"])
        return "{%s%s}" % (body, _more(node, bool(node["items"])))
    if kind in ("list", "tuple", "set"):
        if kind == "set" and not node["items"] and not node.get("more"):  # {} is a dict: Python says set()
            return "%s()" % ("set" if node.get("t") in ("set", None) else safe_line(node["t"]))
        body = ", ".join(_labelled(node, index, one_line(item)) for index, item in enumerate(node["items"]))
        opener, closer = _brackets(node)
        if kind == "tuple" and len(node["items"]) == 1 and not node.get("more") and not node.get("fields"):
            body += ","
        return "%s%s%s%s" % (opener, body, _more(node, bool(node["items"])), closer)
    if kind == "object":  # the seeds' form: Connection({'host': 'queue', 'port': 5672})
        body = ", ".join("'%s': %s" % (safe_line(name), one_line(value)) for name, value in node["attrs"].items())
        return "%s({%s%s})" % (short_type(node["t"]), body, _more(node, bool(node["attrs"])))
    return "<%s>" % safe_line(node.get("t", "?"))


def pretty(node: dict[str, Any], indent: int = 0) -> str:
    """Multi-line when the one-line form would not fit."""
    flat = one_line(node)
    if len(flat) + indent * len(INDENT) <= WIDTH or node.get("kind") is None or node.get("flat"):
        return flat
    pad = INDENT * (indent + 1)
    lines = []
    kind = node["kind"]
    if kind == "dict":
        opener, closer = "{", "}"
        for key, value in node["items"]:
            lines.append("%s%s: %s" % (pad, one_line(key), pretty(value, indent + 1)))
    elif kind == "object":
        opener, closer = short_type(node["t"]) + "({", "})"
        for name, value in node["attrs"].items():
            lines.append("%s'%s': %s" % (pad, safe_line(name), pretty(value, indent + 1)))
    else:
        opener, closer = _brackets(node)
        for index, item in enumerate(node["items"]):
            lines.append("%s%s" % (pad, _labelled(node, index, pretty(item, indent + 1))))
    return _block(opener, lines, closer, node, indent)


def _block(opener: str, lines: list[str], closer: str, node: dict[str, Any], indent: int) -> str:
    """``lines`` between the brackets, one a line, then what was left out; no comma after the last, as the seeds."""
    if node.get("more"):
        lines.append("%s%s" % (INDENT * (indent + 1), _more_text(node)))
    return "\n".join([opener, ",\n".join(lines), INDENT * indent + closer])


def seeds_value(node: dict[str, Any], expand: int, indent: int = 0) -> str:
    """The VALUE field of getglobal and vmtool as the seeds print it.

    A single object expanded (``-x 2`` and deeper): one attribute per line, JSON style
    (``Connection({`` / ``"host": "queue",`` / ``})``). A list of objects: one per line, however short.
    Anything else as ``pretty`` shows it.
    """
    if node.get("kind") == "object" and expand != 1 and node.get("attrs"):
        pad = INDENT * (indent + 1)
        lines = ["%s%s: %s" % (pad, _json_string(name), json_style(value)) for name, value in node["attrs"].items()]
        return _block(short_type(node["t"]) + "({", lines, "})", node, indent)
    items = node.get("items")
    if node.get("kind") in ("list", "tuple", "set") and items and any(i.get("kind") == "object" for i in items):
        opener, closer = _brackets(node)
        pad = INDENT * (indent + 1)
        lines = ["%s%s" % (pad, one_line(item)) for item in items]
        return _block(opener, lines, closer, node, indent)
    return pretty(node, indent)


def json_style(node: dict[str, Any]) -> str:
    """A value on one line as JSON writes it (strings in double quotes, escaped; true/false/null);
    objects as ``Type({...})``, reprs as they are."""
    if "v" in node:
        value = node["v"]
        if isinstance(value, str):
            return _json_string(value) + _cut_note(node)
        if value is None or isinstance(value, bool):
            return {None: "null", True: "true", False: "false"}[value]
        return _scalar(node)
    kind = node.get("kind")
    if kind == "dict":
        body = ", ".join("%s: %s" % (json_style(k), json_style(v)) for k, v in node["items"])
        return "{%s%s}" % (body, _more(node, bool(node["items"])))
    if kind in ("list", "tuple", "set"):
        body = ", ".join(json_style(item) for item in node["items"])
        return "[%s%s]" % (body, _more(node, bool(node["items"])))
    if kind == "object":
        body = ", ".join("%s: %s" % (_json_string(name), json_style(value)) for name, value in node["attrs"].items())
        return "%s({%s%s})" % (short_type(node["t"]), body, _more(node, bool(node["attrs"])))
    return one_line(node)


def _json_string(text: str) -> str:
    """JSON's string form, ASCII only: every control character and BiDi override comes out escaped."""
    from ..protocol.framing import json_text

    return json_text(str(text), ": ", ", ")


def short_type(name: object) -> str:
    """``pkg.mod.Connection`` as ``Connection``: the class name alone, as the seeds show objects."""
    return safe_line(str(name).rsplit(".", 1)[-1])


def type_line(node: dict[str, Any]) -> str:
    """The seeds' ``TYPE`` field: ``<class 'list'>``, ``<class '__main__.Connection'>``."""
    return "<class '%s'>" % safe_line(node.get("t", "?"))


def _scalar(node: dict[str, Any]) -> str:
    value = node["v"]
    text = repr(value)
    return text + _cut_note(node)


def _cut_note(node: dict[str, Any]) -> str:
    """How much of a long string, repr or bytes object is shown (the agent never sends it all)."""
    cut = node.get("cut")
    if isinstance(cut, list) and len(cut) == 2:
        return "  (cut: %s of %s %s shown, -v shows more)" % (
            _count(cut[0]),
            _count(cut[1]),
            node.get("unit") or "chars",
        )
    if isinstance(node.get("len"), int):  # a container below the -x depth, written until its budget ran out
        return "  (len %s)" % _count(node["len"])
    return ""


def _count(number: Any) -> str:
    return f"{number:,}" if isinstance(number, int) else str(number)


def _labelled(node: dict[str, Any], index: int, text: str) -> str:
    """A named tuple's item as Python shows it, ``name=value``; any other item as it is."""
    fields = node.get("fields")
    if isinstance(fields, list) and index < len(fields):
        return "%s=%s" % (safe_line(fields[index]), text)
    return text


def _brackets(node: dict[str, Any]) -> tuple[str, str]:
    kind = node["kind"]
    if kind == "tuple":  # a named tuple as Python writes it, Point(x=1, y=2); another subclass by its name
        if node.get("fields"):
            return short_type(node["t"]) + "(", ")"
        return ("(", ")") if node.get("t") in ("tuple", None) else (safe_line(node["t"]) + "((", "))")
    if kind == "set":  # a frozenset (or a subclass) by its name, as Python shows it: {1} read as a set
        return ("{", "}") if node.get("t") in ("set", None) else (safe_line(node["t"]) + "({", "})")
    if node.get("t") not in ("list", None):
        return safe_line(node["t"]) + "([", "])"
    return "[", "]"


def _more(node: dict[str, Any], has_items: bool) -> str:
    return "%s%s" % (", " if has_items else "", _more_text(node)) if node.get("more") else ""


def _more_text(node: dict[str, Any]) -> str:
    """The items left out; with -v, that -v has a cap too (it never sends a million items)."""
    if node.get("cap"):
        return "... %s shown of %s; -v shows at most %s" % (
            _count(len(node.get("items") or node.get("attrs") or ())),
            _count(node.get("len")),
            _count(node["cap"]),
        )
    return "... %d more" % node["more"]
