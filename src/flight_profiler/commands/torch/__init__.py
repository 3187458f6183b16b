"""The `torch` command."""
