"""Kill-safe ptrace injector: run Python source in a live, unmodified CPython (Linux x86-64).

Layout (python-ptrace-like layers):
  sys.py      raw ptrace / waitpid / cross-process memory
  symbols.py  C-API, gadget and free-address lookup (ELF via attach/elf.py)
  arch.py     the architecture interface; x86_64.py implements it
  machine.py  phases, transition table, recovery per phase, test hooks
  session.py  the two stages (MAP, RUN) and ``inject``
"""

from __future__ import annotations

from .machine import ON_CLIENT_DEATH, RECOVERY, TRANSITIONS, Phase
from .session import MODES, InjectionReport, inject, wrap_bootstrap
from .symbols import PythonApi, find_python_api, refuse_free_threaded

__all__ = [
    "MODES",
    "ON_CLIENT_DEATH",
    "RECOVERY",
    "TRANSITIONS",
    "InjectionReport",
    "Phase",
    "PythonApi",
    "find_python_api",
    "inject",
    "refuse_free_threaded",
    "wrap_bootstrap",
]
