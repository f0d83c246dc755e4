"""evorag's MCP server: a thin adapter over the service layer (stdio or streamable HTTP).

``build_server(service)`` gives the FastMCP app (tools, resources, deployed tools kept live);
``run_stdio(service)`` and ``run_http(service, host=, port=, insecure_no_auth=)`` serve it.

Layout: the tools are declared in ``_tools_knowledge``, ``_tools_evolution``, ``_tools_approvals``,
``_tools_team`` and ``_tools_queue``, each a ``ToolGroup`` (``_registration``) listed in ``_tools.TOOL_GROUPS``,
where the role table ``TOOL_OPERATIONS`` is derived from the operation each tool declares. A new tool goes into
one of those modules (or a new ``_tools_<area>.py`` added to ``TOOL_GROUPS``): arguments from ``_models``, one
service call, a result model from ``_models``. The machinery behind them: ``_server`` (the FastMCP subclass:
roles, sessions, metrics), ``_dynamic_tools`` (deployed tools), ``_sessions``, ``_progress``, ``_approvals``
(asking the person through the client), ``_resources``, and the HTTP side (``_transports``, ``_auth``, ``_limits``).
"""

from evorag.mcp_server._server import EvoragMCP, build_server
from evorag.mcp_server._tools import TOOL_OPERATIONS, tool_role
from evorag.mcp_server._transports import http_app, run_http, run_stdio

__all__ = ["TOOL_OPERATIONS", "EvoragMCP", "build_server", "http_app", "run_http", "run_stdio", "tool_role"]
