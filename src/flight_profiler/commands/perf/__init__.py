"""The `perf` command."""
