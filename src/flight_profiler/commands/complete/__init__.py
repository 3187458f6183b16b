"""The `complete` command."""
