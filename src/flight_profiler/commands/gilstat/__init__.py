"""The `gilstat` command."""
