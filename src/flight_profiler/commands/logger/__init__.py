"""The `logger` command."""
