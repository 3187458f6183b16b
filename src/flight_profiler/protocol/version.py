"""Protocol version, checked in the hello exchange (runs on both sides)."""

PROTOCOL_VERSION = 1
