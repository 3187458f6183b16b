"""The `vmtool` command."""
