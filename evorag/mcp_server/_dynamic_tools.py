"""Deployed (evolved) tools served as MCP tools, kept equal to the deployed tool set, also when another process
deploys or rolls back.

A deployed tool's input schema is its manifest's JSON schema and it runs in the sandbox, so it is a prebuilt
``Tool`` (``GeneratedTool``), not a Python function. FastMCP's tool manager has no public way to add a prebuilt
Tool (``add_tool`` derives the schema from a function's signature), so deployed tools are not put into FastMCP:
they live in ``DeployedTools`` and ``EvoragMCP`` serves them next to the core tools from its ``list_tools`` and
``call_tool`` (FastMCP's public methods, which its request handlers call).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

import anyio
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.tools import Tool
from mcp.server.fastmcp.utilities.func_metadata import func_metadata
from mcp.types import TextContent, ToolAnnotations
from mcp.types import Tool as ListedTool

from evorag.errors import EvoragError
from evorag.principals import Principal
from evorag.service import Evorag

logger = logging.getLogger("evorag.mcp")

REGISTRY_POLL_S = 2.0


class GeneratedTool(Tool):
    """An evolved tool: its manifest's JSON schema is the input schema; it runs in the sandbox."""

    async def run(self, arguments: dict[str, Any], context=None, convert_result: bool = False) -> Any:
        result = await self.fn(arguments)
        text = json.dumps(result, ensure_ascii=False, default=str)
        return [TextContent(type="text", text=text)], {"result": result}


def _placeholder():
    """Gives generated tools the FuncMetadata a Tool requires; their arguments never go through it."""


def generated_tool(manifest, service: Evorag) -> GeneratedTool:
    # The docstring and parameter descriptions are untrusted (a model or a submitter wrote them): clients
    # get them through the manifest's template, one quoted line each, instruction-like text withheld.
    name = manifest.name

    async def call(arguments: dict[str, Any]) -> Any:
        try:  # acts for the caller (EvoragMCP.call_tool's acting_as), whose operator role was checked
            return await anyio.to_thread.run_sync(lambda: service.call_tool(name, arguments))
        except EvoragError as exc:
            raise ToolError(str(exc)) from exc

    return GeneratedTool(
        fn=call,
        name=name,
        title=manifest.served_name().replace("_", " "),
        description=manifest.served_description(),
        parameters=manifest.served_schema(),
        fn_metadata=func_metadata(_placeholder, structured_output=False),
        is_async=True,
        annotations=ToolAnnotations(openWorldHint=manifest.risk == "HIGH"),
        # The tool's semantic version (also in its description); a kept previous major names its tool.
        meta={"evorag/version": manifest.semantic_version(),
              **({"evorag/pinned_of": manifest.pinned_of} if manifest.pinned_of else {})},
    )


def listed(tool: Tool) -> ListedTool:
    """A tool as tools/list shows it (the fields FastMCP's own list_tools fills)."""
    return ListedTool(name=tool.name, title=tool.title, description=tool.description, inputSchema=tool.parameters,
                      outputSchema=tool.output_schema, annotations=tool.annotations, icons=tool.icons,
                      _meta=tool.meta)


class DeployedTools:
    """The deployed tools as MCP tools. ``on_change()`` runs (in any thread) whenever the set changed.

    ``start()`` loads them and follows this process's deploys and rollbacks; ``watch_on(loop)`` polls for other
    processes' (one task per event loop that serves sessions). Without a usable tool registry (a broken plugin
    repository) the server goes on with its core tools: ``error`` says why.
    """

    def __init__(self, service: Evorag, *, principal: Principal, reserved: Collection[str],
                 on_change: Callable[[], None]) -> None:
        self._service = service
        self._principal = principal  # polling is the server's own doing, not a client's call
        self._reserved = frozenset(reserved)
        self._on_change = on_change
        self._tools: dict[str, GeneratedTool] = {}  # replaced whole, never changed in place: readers need no lock
        self._markers: dict[str, str] = {}  # name -> "version:deployed_at" of the tool served
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._watcher: asyncio.Task | None = None
        self.error: str | None = None

    def start(self) -> None:
        try:
            self._service.refresh_tools(principal=self._principal)
            self.sync()
            self._unsubscribe = self._service.follow_tools(self._changed, principal=self._principal)
        except Exception as exc:  # noqa: BLE001 - the core tools still work without self-evolution
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning("deployed tools are unavailable: %s", self.error)

    def get(self, name: str) -> GeneratedTool | None:
        return self._tools.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def listed(self) -> list[ListedTool]:
        return [listed(tool) for tool in self._tools.values()]

    def sync(self) -> bool:
        """Make the served tools match the deployed ones; True if anything changed. Any thread."""
        manifests = {m.name: m for m in self._service.tools(principal=self._principal)}
        with self._lock:
            tools, markers = dict(self._tools), dict(self._markers)
            for name in [n for n in tools if n not in manifests]:
                del tools[name], markers[name]
            for name, manifest in manifests.items():
                marker = f"{manifest.version}:{manifest.deployed_at}"
                if name in self._reserved:
                    logger.warning("deployed tool %r is shadowed by a built-in tool of the same name", name)
                elif markers.get(name) != marker:
                    tools[name], markers[name] = generated_tool(manifest, self._service), marker
            changed = markers != self._markers
            self._tools, self._markers = tools, markers
        return changed

    def _changed(self) -> None:
        # Called inside the registry's refresh, right after a deploy or rollback: never raise into it.
        try:
            if self.sync():
                self._on_change()
        except Exception:
            logger.exception("could not update the MCP tools after a change of the deployed tools")

    def watch_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Poll for other processes' deploys and rollbacks on ``loop`` (once per loop at a time)."""
        watching = self._watcher is not None and not self._watcher.done() and self._watcher.get_loop() is loop
        if self.error is None and not watching:
            self._watcher = loop.create_task(self._watch(), name="evorag-registry")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_POLL_S)
            try:
                # A change re-reads the registry, which calls _changed: the tools are re-synced, sessions told.
                await anyio.to_thread.run_sync(lambda: self._service.refresh_tools(principal=self._principal))
            except Exception as exc:  # noqa: BLE001 - keep watching; the next poll may succeed
                logger.warning("could not check the deployed tools: %s", exc)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
