"""evorag's MCP server: a thin adapter over the service layer (stdio or streamable HTTP).

``build_server(service)`` gives the FastMCP app (tools, resources, deployed tools kept live);
``run_stdio(service)`` and ``run_http(service, host=, port=, insecure_no_auth=)`` serve it.
"""

from evorag.mcp_server._server import EvoragMCP, build_server
from evorag.mcp_server._transports import http_app, run_http, run_stdio

__all__ = ["EvoragMCP", "build_server", "http_app", "run_http", "run_stdio"]
