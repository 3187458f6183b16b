"""The `thread` command."""
