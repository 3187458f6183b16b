"""One folder per command.

``<cmd>/agent.py`` runs INSIDE THE TARGET (stdlib only, Python 3.8, relative
imports); ``<cmd>/client.py`` runs in the CLI and holds the command's SPEC
(arguments, help, rendering). ``<cmd>/model.py`` types what crosses the wire.
"""
