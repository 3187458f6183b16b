"""The `stack` command."""
