"""Make text that came from the target safe for a terminal.

Everything the agent sends (type and attribute names, reprs, exception texts,
thread and file names, other users' command lines in ``ps``) is untrusted: a
raw ESC can clear the screen, retitle the window, write the clipboard (OSC 52)
or plant hyperlinks (OSC 8); BiDi overrides and zero-width characters make text
read differently from what it is. We show every character that Python does not
call printable (categories Cc, Cf, Cs, Co, Cn, Zl, Zp and spaces other than
" ") as an escape, the way ``repr`` does: ``\\x1b``, ``\\u202e``. That covers
C0, C1 and DEL, so no ESC/CSI/OSC/DCS sequence can start.

``safe_line`` is for one-line fields (a newline there would let the target
forge lines of our output); ``safe_block`` keeps newlines and tabs for text
that is multi-line by nature (console output, tracebacks).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_char(ch: str) -> str:
    """The visible escape of one character."""
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def safe_line(text: object) -> str:
    """``text`` on one line with every non-printable character escaped."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable():  # the common case, at C speed
        return value
    return "".join(ch if ch.isprintable() else escape_char(ch) for ch in value)


def safe_block(text: object) -> str:
    """Like ``safe_line`` but keeps newlines and tabs."""
    value = text if isinstance(text, str) else str(text)
    return "\n".join(_keep_tabs(line) for line in value.split("\n"))


# rich deletes these five from every string it turns into text (rich.text's strip_control_codes), before
# the console's last pass (render/console.py) can escape them: a thread named "a\rb" showed as "ab".
_RICH_DELETES = {0x07: "\\x07", 0x08: "\\x08", 0x0B: "\\x0b", 0x0C: "\\x0c", 0x0D: "\\r"}


def rich_proof(value: Any) -> Any:
    """An event (JSON: dicts, lists, strings) with the characters rich would delete shown escaped, for
    the text renderers; idempotent with ``safe_line``/``safe_block``, which escape them the same way."""
    if isinstance(value, str):
        return value.translate(_RICH_DELETES)
    if isinstance(value, dict):
        # a value node's string ("v") is only ever shown through repr() or JSON's escapes (render/values.py),
        # which escape these too: escaped here as well, a BEL showed as '\\x07' and a CR as '\\r'
        return {
            rich_proof(key): item if key == "v" and isinstance(item, str) else rich_proof(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [rich_proof(item) for item in value]
    return value


def _keep_tabs(line: str) -> str:
    if line.isprintable():
        return line
    return "".join(ch if ch.isprintable() or ch == "\t" else escape_char(ch) for ch in line)
