"""Team flows shared by the CLI, the MCP server and the UI: see issue 4."""
