"""The deployed tool set: add a tool through the gates, list, document and call tools, checkpoints and
rollback, and the evolution audit log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorag.about import evorag_version
from evorag.errors import ConfigError, ExternalError, UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._usage import UsageRecorder
from evorag.tools.approvals import Approver, PolicyApprover
from evorag.tools.evolution import EvolutionOutcome, candidate_files
from evorag.tools.plugins import ToolManifest, Version
from evorag.tools.rate_limit import counted_use
from evorag.tools.test_writing import has_tests
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
        self._usage = UsageRecorder(ctx)

    async def aadd_tool(self, path: Path, *, request: str = "", approver: Approver | None = None,
                        principal: Principal | None = None) -> EvolutionOutcome:
        """Run a hand-written candidate directory through the gates; deploy it if approved (operator role).
        It counts against the principal's hourly evolution limit (unless the infrastructure fails under it). Without ``approver``, the policy decides (nothing but a
        pending request for anything that needs a person)."""
        parts = self._ctx.parts
        with self._ctx.acting(principal, "add_tool") as who:
            pipeline = await asyncio.to_thread(lambda: parts.pipeline)  # opens the plugins' git repository
            # No deploy without tests: a candidate without them needs a model to write them (refused before it
            # takes a slot when there is none).
            writer = await asyncio.to_thread(self._test_writer, Path(path))
            # Counted for ``who``; given back if the sandbox or another part of the infrastructure fails under it.
            async with counted_use(parts.rate_limiter, "evolution"):
                return await pipeline.run(Path(path), request=request or f"add tool from {Path(path).name}",
                                          approver=approver or PolicyApprover(assume_yes=False, principal=who),
                                          test_writer=writer, test_rounds=self._ctx.settings.evolution_attempts)

    def _test_writer(self, path: Path):
        """The model writing the tests of a candidate that has none (None when it has tests). Raises ConfigError
        when it has none and no model is configured; a model that fails later raises ModelUnavailableError."""
        if has_tests(candidate_files(path)):
            return None
        try:
            return model_test_writer(self._ctx, f"adding tool {path.name}")
        except UserError as exc:  # provider none, a missing key...
            # One line, the fix folded in: add tests, or configure the model that writes them.
            raise ConfigError(f"{path.name} has no tests (test_*.py) and no model is configured to write them "
                              f"({exc.message}): add tests to the candidate or configure a model "
                              "(EVORAG_LLM_PROVIDER)") from None

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
        """Call a deployed tool in the sandbox (operator role). The call (not its arguments) is logged in the
        usage log with its outcome and latency."""
        with self._ctx.acting(principal, "call_tool") as who:
            started = time.perf_counter()
            try:
                result = self._ctx.parts.registry.call(name, arguments)
            except Exception as exc:
                self._usage.tool_call(who, name, started=started, error=exc)
                raise
            self._usage.tool_call(who, name, started=started)
            return result

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


def model_test_writer(ctx: ServiceContext, what: str):
    """The test writer over the service's agents model (see ``EvolutionPipeline.write_tests``), for every path
    that sends a candidate through the gates (adding a tool, a restore's quarantined tools). Raises UserError
    (ConfigError) when no model is configured; the model failing later raises ModelUnavailableError naming
    ``what``."""
    # AutoGen loads here: only a candidate without tests needs it.
    from evorag.agents._test_writer import ModelTestWriter
    from evorag.agents.model_clients._forbidden import ForbiddenChatCompletionClient

    client = ctx.parts.model_client("agents")
    if isinstance(getattr(client, "inner", client), ForbiddenChatCompletionClient):  # (metered or not)
        # No model may be asked. Refused only if the candidate gets as far as needing its tests written: the
        # gates before (code, dependencies) still say what is wrong with it first.
        async def refuse(request):
            raise ConfigError(f"{what}: the candidate has no tests (test_*.py) and language model requests are "
                              "forbidden here (EVORAG_LLM_PROVIDER=forbidden): add tests to the candidate")

        return refuse
    return _failing_as_model_unavailable(ModelTestWriter.over_client(client), what)


def _failing_as_model_unavailable(writer, what: str):
    """``writer`` whose endpoint failures (unreachable, timed out) end the run as ModelUnavailableError: one line
    naming the setting to fix, exit 3, as a team run's model failure."""
    from evorag.teams._evolution import model_failure_error

    async def write(request):
        try:
            return await writer(request)
        except ExternalError as exc:
            raise model_failure_error(exc, what) from None

    return write
