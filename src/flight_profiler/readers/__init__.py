"""Client-side readers that look at the target from outside (no injection)."""
