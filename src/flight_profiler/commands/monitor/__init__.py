"""The `monitor` command."""
