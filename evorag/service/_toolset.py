"""The deployed tool set: add a tool through the gates, list, document and call tools, checkpoints and
rollback, and the evolution audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorag.about import evorag_version
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.approvals import Approver, PolicyApprover
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.plugins import ToolManifest, Version
from evorag.tools.tool_openapi import tools_openapi


@dataclass(slots=True)
class Rollback:
    """The new checkpoint a rollback recorded, and the tools it brought back or removed."""

    version: Version
    added: list[str]
    removed: list[str]

    def to_dict(self) -> dict:
        return {"version": self.version.to_dict(), "added": self.added, "removed": self.removed}


class ToolsetService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._seen_checkpoint: str | None = None

    async def aadd_tool(self, path: Path, *, request: str = "", approver: Approver | None = None,
                        principal: Principal | None = None) -> EvolutionOutcome:
        """Run a hand-written candidate directory through the gates; deploy it if approved (operator role).
        It counts against the hourly evolution limit. Without ``approver``, the policy decides (nothing but a
        pending request for anything that needs a person)."""
        parts = self._ctx.parts
        with self._ctx.acting(principal, "add_tool") as who:
            pipeline = await asyncio.to_thread(lambda: parts.pipeline)  # opens the plugins' git repository
            await asyncio.to_thread(parts.rate_limiter.acquire, "evolution")
            return await pipeline.run(Path(path), request=request or f"add tool from {Path(path).name}",
                                      approver=approver or PolicyApprover(assume_yes=False, principal=who))

    def add_tool(self, path: Path, *, request: str = "", approver: Approver | None = None,
                 principal: Principal | None = None) -> EvolutionOutcome:
        """``aadd_tool`` for callers without an event loop."""
        return asyncio.run(self.aadd_tool(path, request=request, approver=approver, principal=principal))

    def tools(self, *, principal: Principal | None = None) -> list[ToolManifest]:
        """The deployed tools with their version and risk (reader role)."""
        self._ctx.check(principal, "list_tools")
        return self._ctx.parts.registry.tools()

    def tool_docs(self, *, principal: Principal | None = None) -> str:
        """The generated reference of every deployed tool (Markdown), then the changelog (reader role)."""
        self._ctx.check(principal, "list_tools")
        pipeline = self._ctx.parts.pipeline
        return pipeline.registry.documentation() + "\n" + pipeline.repository.changelog()

    def tool_set_checkpoint(self, *, principal: Principal | None = None) -> str:
        """The id of the tool set in force; it changes with every deploy and rollback (cheap to poll)."""
        self._ctx.check(principal, "list_tools")
        return self._ctx.parts.pipeline.repository.head_id()

    def follow_tools(self, listener: Callable[[], None], *, principal: Principal | None = None
                     ) -> Callable[[], None]:
        """Call ``listener()`` (in whichever thread made the change) after every change of the deployed tool set
        this process sees: its own deploys and rollbacks at once, other processes' once ``refresh_tools`` notices
        them (reader role). Returns the function that stops it."""
        self._ctx.check(principal, "list_tools")
        return self._ctx.parts.registry.subscribe(lambda change: listener())

    def refresh_tools(self, *, principal: Principal | None = None) -> bool:
        """Re-read the deployed tools if the tool set changed since the last look (another process deployed or
        rolled back); the ``follow_tools`` listeners hear of it. True when a tool appeared, went or changed. Cheap
        to poll: it reads the checkpoint id, and the tool set only when that moved."""
        head = self.tool_set_checkpoint(principal=principal)
        if head == self._seen_checkpoint:
            return False
        change = self._ctx.parts.registry.refresh()
        self._seen_checkpoint = head
        return bool(change.added or change.removed or change.updated)

    def call_tool(self, name: str, arguments: dict[str, Any], *, principal: Principal | None = None) -> Any:
        """Call a deployed tool in the sandbox (operator role)."""
        with self._ctx.acting(principal, "call_tool"):
            return self._ctx.parts.registry.call(name, arguments)

    def retire_tool(self, selector: str, *, principal: Principal | None = None) -> Version:
        """Retire a previous major version a breaking redeploy kept callable (``NAME@MAJOR`` or its folder
        ``NAME_vMAJOR``), as a new checkpoint (approver role: its callers stop working). Holds the writer slot."""
        with self._ctx.acting(principal, "rollback"):
            pipeline = self._ctx.parts.pipeline
            folder = pipeline.registry.resolve(selector)
            with pipeline.writer:
                version = pipeline.repository.retire(folder, message=f"retired {selector}")
                pipeline.registry.refresh()
            pipeline.audit.write("retired", tool=folder, selector=selector, new_checkpoint=version.id)
            return version

    def tools_openapi(self, *, principal: Principal | None = None) -> dict:
        """An OpenAPI 3.1 document of every deployed tool (reader role); ``info.version`` is evorag's."""
        self._ctx.check(principal, "list_tools")
        return tools_openapi(self._ctx.parts.registry.tools(), evorag_version=evorag_version())

    def versions(self, *, principal: Principal | None = None) -> list[Version]:
        """Checkpoints of the deployed tool set, oldest first (reader role)."""
        with self._ctx.acting(principal, "list_versions"):
            return self._ctx.parts.pipeline.repository.versions()

    def rollback(self, version_id: str, *, principal: Principal | None = None) -> Rollback:
        """Restore the tool set of a checkpoint, recorded as a new checkpoint (approver role: it can remove
        every deployed tool). Holds the writer slot."""
        with self._ctx.acting(principal, "rollback"):
            version, change = self._ctx.parts.pipeline.rollback(version_id)
            return Rollback(version, change.added, change.removed)

    def evolution_log(self, *, last: int = 500, principal: Principal | None = None) -> list[dict]:
        """The newest entries of the audit log: evolutions, gates, approvals, deploys (reader role)."""
        self._ctx.check(principal, "metrics")
        return self._ctx.parts.pipeline.audit.entries(last)
