"""The MCP server (``flight_profiler mcp``): client side, needs Python >= 3.10 and the ``mcp`` package."""
