"""The `getglobal` command."""
