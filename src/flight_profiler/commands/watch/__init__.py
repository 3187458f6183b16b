"""The `watch` command."""
