"""The one place a rich Console is made; everything else receives it.

The console is the last gate before the terminal, so it is where target text
is defused whatever renderer produced it: markup and emoji codes are never
interpreted in strings (``[red]x[/red]`` or ``[link=…]`` from the target stay
text), and every text segment is escaped with ``safe_block`` just before rich
turns it into bytes, so the only escape sequences that reach the terminal are
our own styles. Hyperlink styles are dropped: we never make links, so one can
only come from the target.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO

from rich.console import Console
from rich.segment import Segment

from .safe import safe_block


class SafeConsole(Console):
    """A Console whose output holds no control character that the renderables' text brought."""

    # rich's own last step from segments to text (present since rich 10); if a release renamed it,
    # tests/unit/test_untrusted_text.py::test_console_gate_escapes_whatever_a_renderer_passes fails
    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(_defused(buffer))

    def on_broken_pipe(self) -> None:
        """rich's own ends the process with status 1 ("failed"); our output's reader going away (``| head``)
        ends it as with ``--json``: quietly, status 141 (cli/main.py's entry), the session closed on the way."""
        self.quiet = True
        raise BrokenPipeError(32, "our output was closed")


def _defused(buffer: Iterable[Segment]) -> Iterator[Segment]:
    for segment in buffer:
        text, style, control = segment
        if control:  # rich's own cursor and screen codes (progress lines), never target text
            yield segment
            continue
        if style is not None and style.link:
            style = style.update_link(None)
        yield Segment(safe_block(text), style, control)


def make_console(color: bool = True, file: IO[str] | None = None, width: int | None = None) -> Console:
    """A console honouring ``--no-color``, ``NO_COLOR`` and non-terminal output."""
    no_color = not color or "NO_COLOR" in os.environ
    return SafeConsole(
        file=file,
        width=width,
        no_color=no_color,
        color_system=None if no_color else "auto",
        highlight=False,
        markup=False,  # target text is never markup; we style with Text objects
        emoji=False,
        soft_wrap=True,
    )
