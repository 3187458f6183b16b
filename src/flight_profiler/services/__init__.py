"""In-target services used by the commands' agent halves.

Runs INSIDE THE TARGET: stdlib only, Python 3.8 syntax, relative imports only
(the package is loaded under a private alias, see ``agent/bootstrap``).
"""
