"""Deployed (evolved) tools: a git-versioned repository and a live registry shared by agents and MCP, the
manifest chain that vouches for what was deployed, and the re-verification of a restored repository."""

from evorag.tools.plugins._chain import (
    CHAIN_FILE,
    KEY_FILE,
    ManifestChain,
    load_or_create_key,
    parse_key,
    read_key,
    write_key,
)
from evorag.tools.plugins._manifest import ToolManifest
from evorag.tools.plugins._registry import RegistryChange, ToolRegistry, pinned_name
from evorag.tools.plugins._repository import PluginRepository, Version, check_tool_name
from evorag.tools.plugins._restore import restore_plugins

__all__ = [
    "CHAIN_FILE",
    "KEY_FILE",
    "ManifestChain",
    "PluginRepository",
    "RegistryChange",
    "ToolManifest",
    "ToolRegistry",
    "Version",
    "check_tool_name",
    "load_or_create_key",
    "parse_key",
    "pinned_name",
    "read_key",
    "restore_plugins",
    "write_key",
]
