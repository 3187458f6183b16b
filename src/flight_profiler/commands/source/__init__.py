"""The `source` command."""
