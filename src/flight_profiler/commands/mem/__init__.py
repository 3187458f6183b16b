"""The `mem` command."""
