"""Compatibility entry point: the injector lives in ``attach.injector`` (see its package docstring)."""

from __future__ import annotations

from flight_profiler.attach.injector import (
    MODES,
    InjectionReport,
    PythonApi,
    find_python_api,
    inject,
    refuse_free_threaded,
    wrap_bootstrap,
)

__all__ = [
    "MODES",
    "InjectionReport",
    "PythonApi",
    "find_python_api",
    "inject",
    "refuse_free_threaded",
    "wrap_bootstrap",
]
