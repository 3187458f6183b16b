"""The `module` command."""
