"""MCP resources: the indexed sources, and the pages of one source."""

from __future__ import annotations

import json

import anyio
from mcp.server.fastmcp import FastMCP

from evorag.errors import UserError
from evorag.mcp_server._models import SourceInfo
from evorag.service import Evorag


def register_resources(server: FastMCP, service: Evorag) -> None:
    @server.resource("docs://sources", name="sources", mime_type="application/json",
                     description="Indexed documentation sources.")
    async def sources_resource() -> str:
        records = await anyio.to_thread.run_sync(service.sources)
        return json.dumps([SourceInfo.of(record).model_dump() for record in records])

    @server.resource("docs://{source}/pages", name="source_pages", mime_type="application/json",
                     description="The indexed page URLs of one source.")
    async def pages_resource(source: str) -> str:
        try:
            pages = await anyio.to_thread.run_sync(service.source_pages, source)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return json.dumps({"source": source, "pages": pages})
