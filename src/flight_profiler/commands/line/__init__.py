"""The `line` command."""
