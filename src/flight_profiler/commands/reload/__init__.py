"""The `reload` command."""
