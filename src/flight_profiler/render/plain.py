"""One line of text that ``--cmd`` prints without importing rich.

rich costs a client start-up ~30-60 ms of imports; a command whose result is a
line of text (``module``) returns a ``Plain``, which ``cli/output.py`` writes
itself, escaped like everything the console writes. Anywhere else (the shell,
fleet views, tests) rich renders it through ``__rich__``, as the same ``Text``.
"""

from __future__ import annotations

import os

from .safe import safe_block

TYPE_CHECKING = False  # typing is not imported at run time: ~3 ms of every --cmd's start-up (issue 14)
if TYPE_CHECKING:
    from typing import IO

    from rich.text import Text

# the styles a Plain may carry, as SGR codes
_SGR = {"yellow": "33", "red": "31", "green": "32", "dim": "2", "bold": "1"}


class Plain:
    __slots__ = ("style", "text")

    def __init__(self, text: str, style: str = "") -> None:
        if style not in _SGR and style:
            raise ValueError("unknown style %r" % style)
        self.text = text
        self.style = style

    def __rich__(self) -> Text:
        from rich.text import Text

        return Text(self.text, style=self.style)

    def write(self, file: IO[str], color: bool) -> None:
        """The text, escaped, one line break after it; its style only on a terminal that wants colours."""
        text = safe_block(self.text)
        if self.style and color and "NO_COLOR" not in os.environ and file.isatty():
            text = "\x1b[%sm%s\x1b[0m" % (_SGR[self.style], text)
        file.write(text + "\n")
        file.flush()
