"""A target whose data is hostile to a terminal: every name a command shows carries escapes.

Usage: hostile_names_target.py [ARGV...]   (extra argv shows up in ps)
Class, attribute and thread names, a __repr__, an exception message, a function
and file name all carry ESC/OSC/CSI sequences, BiDi overrides or rich markup.
Prints "ready" when ready. Stdlib only; Python 3.8+.
"""

import threading
import time

OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;aWQK\x07"
OSC_LINK = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202eevil\u2066"
MARKUP = "[red]x[/red][link=http://evil.example]y[/link]"


class Hostile:
    def __init__(self, index):
        self.index = index
        setattr(self, "attr" + CLEAR, OSC_CLIPBOARD)

    def __repr__(self):
        return "<Hostile " + OSC_TITLE + BIDI + ">"


Hostile.__name__ = Hostile.__qualname__ = "Evil" + OSC_LINK + MARKUP

HOSTILE = Hostile(0)
INSTANCES = [Hostile(i) for i in range(20000)]  # enough to rank in mem summary
TEXT = "text" + OSC_CLIPBOARD + BIDI


def boom():
    raise ValueError("bad " + OSC_TITLE + CLEAR + BIDI)


def _sleeper():
    while True:
        time.sleep(0.05)


# a function whose name and source file name are hostile, as a frame in a thread's stack
_SOURCE = "def sleeper():\n    _sleeper()\n"
_CODE = compile(_SOURCE, "/tmp/evil" + OSC_TITLE + ".py", "exec")
_NAMESPACE = {"_sleeper": _sleeper}
exec(_CODE, _NAMESPACE)
_FUNC = _NAMESPACE["sleeper"]
_NAMES = {"co_name": "sleep" + CLEAR + BIDI}
if hasattr(_FUNC.__code__, "co_qualname"):  # 3.11+: what stack readers show
    _NAMES["co_qualname"] = _NAMES["co_name"]
_FUNC.__code__ = _FUNC.__code__.replace(**_NAMES)


def _caller():
    while True:
        try:
            boom()
        except ValueError:
            pass
        time.sleep(0.02)


threading.Thread(target=_FUNC, name="thread" + OSC_TITLE + BIDI, daemon=True).start()
threading.Thread(target=_caller, name="caller", daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(0.2)
