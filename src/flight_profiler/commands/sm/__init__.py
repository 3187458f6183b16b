"""The `sm` command (search functions and methods)."""
