"""The `dashboard` command."""
