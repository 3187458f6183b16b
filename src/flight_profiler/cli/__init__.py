"""The command-line client: argument wiring, the shell, and running commands."""
