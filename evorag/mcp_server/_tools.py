"""Every module of core MCP tools, in one place, and the role each tool needs.

Adding tools: write a module ``_tools_<area>.py`` with ``tools = ToolGroup()`` and ``@tools.tool("operation")``
functions (see _registration.py; the operation is required and names the role), then add its group to
``TOOL_GROUPS`` below. Each tool parses its arguments, calls one service method and formats the result.
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

from evorag.mcp_server import (
    _tools_approvals,
    _tools_evolution,
    _tools_feedback,
    _tools_knowledge,
    _tools_proposals,
    _tools_queue,
    _tools_team,
    _tools_usage,
)
from evorag.mcp_server._registration import CoreTool, ToolGroup
from evorag.principals import OPERATIONS, Role

TOOL_GROUPS: tuple[ToolGroup, ...] = (
    _tools_knowledge.tools,
    _tools_evolution.tools,
    _tools_approvals.tools,
    _tools_team.tools,
    _tools_queue.tools,
    _tools_usage.tools,
    _tools_proposals.tools,
    _tools_feedback.tools,
)
GENERATED_TOOL_OPERATION = "call_tool"  # what calling a deployed (evolved) tool is


def _core_tools() -> dict[str, CoreTool]:
    tools: dict[str, CoreTool] = {}
    for group in TOOL_GROUPS:
        for tool in group:
            if tool.name in tools:
                raise RuntimeError(f"two MCP tools are named {tool.name}")
            tools[tool.name] = tool
    return tools


CORE_TOOLS = _core_tools()
# MCP tool -> the operation it performs; the operation's role (evorag.principals.OPERATIONS) is required.
TOOL_OPERATIONS: dict[str, str] = {name: tool.operation for name, tool in CORE_TOOLS.items()}


def tool_role(name: str, *, generated: bool) -> Role:
    """The role a call of tool ``name`` needs. KeyError for a core tool nobody declared: a bug, never a default."""
    return OPERATIONS[GENERATED_TOOL_OPERATION if generated else TOOL_OPERATIONS[name]]


def register_tools(server: FastMCP) -> None:
    for tool in CORE_TOOLS.values():
        server.add_tool(tool.fn, name=tool.name, annotations=tool.annotations)
