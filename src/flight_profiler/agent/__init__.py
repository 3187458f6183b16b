"""The agent: the part of flight_profiler that lives inside the target process.

Runs INSIDE THE TARGET: stdlib only, Python 3.8 syntax, relative imports only.
It serves a Unix socket in a private directory, checks every peer's uid, and
dispatches typed JSON requests to the commands' agent halves via ``registry``.
"""
