"""Deployed (evolved) tools: a git-versioned repository and a live registry shared by agents and MCP."""

from evorag.tools.plugins._manifest import ToolManifest
from evorag.tools.plugins._registry import RegistryChange, ToolRegistry
from evorag.tools.plugins._repository import PluginRepository, Version, check_tool_name

__all__ = ["PluginRepository", "RegistryChange", "ToolManifest", "ToolRegistry", "Version", "check_tool_name"]
