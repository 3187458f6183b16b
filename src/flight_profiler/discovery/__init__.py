"""Finding the Python processes a user could attach to (client side, read-only /proc)."""
