"""The `console` command."""
