"""``python -m flight_profiler``."""

from .cli.main import entry

entry()
