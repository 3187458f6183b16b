"""The `tt` command."""
