"""The self-evolution half of the service: deployed tools, the gate pipeline, versions, approvals.

Like the rest of the service, every operation takes the principal it acts for (``principal=``) and checks
its role; approving is further bound by risk in tools/approvals.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from evorag.principals import Principal
from evorag.settings import Settings


def data_path(*parts: str) -> Path:
    return Path(__file__).parent.joinpath(*parts)


class EvolutionMixin:
    """Self-evolution: deployed tools, the gate pipeline, versions and approvals."""

    settings: Settings

    @property
    def evolution(self):
        from evorag.approval_token import token_digests, withhold_from_process
        from evorag.tools.approvals import ApprovalStore
        from evorag.tools.audit import AuditLog
        from evorag.tools.evolution import EvolutionPipeline
        from evorag.tools.plugins import PluginRepository, ToolRegistry
        from evorag.tools.sandbox import default_sandbox

        with self._lock:  # type: ignore[attr-defined]
            if self._evolution is None:  # type: ignore[has-type]
                settings = self.settings
                # From here on this process runs agents, the sandbox and pip: none of them may inherit the
                # human approval token. The settings already hold what verifying it needs.
                withhold_from_process()
                secrets = [v.get_secret_value() for v in (settings.approval_token, settings.openai_api_key,
                                                          settings.qdrant_api_key) if v is not None]
                repository = PluginRepository(settings.plugins_path)
                sandbox_factory = lambda: default_sandbox(settings)  # resolved per call: a daemon may come and go
                self._evolution = EvolutionPipeline(
                    repository=repository,
                    registry=ToolRegistry(repository, sandbox_factory),
                    sandbox_factory=sandbox_factory,
                    approvals=ApprovalStore(settings.home / "approvals.sqlite3",
                                            token_digests=token_digests(settings)),
                    audit=AuditLog(settings.audit_path, known_secrets=secrets),
                    staging_dir=settings.home / "staging",
                    dependency_allowlist=settings.dependency_allowlist,
                    resolve_dependencies=settings.resolve_dependencies,
                    retrieval_gate=self._retrieval_gate if settings.gate_baseline else None,
                    approval_ttl=settings.approval_timeout,
                    memory=self.memory_store,
                )
            return self._evolution

    @property
    def memory_store(self):
        """Long-term memory of evolution requests and outcomes (mem0); mem0 loads on first use."""
        from evorag.tools.memory import EvolutionMemory

        with self._lock:  # type: ignore[attr-defined]
            if getattr(self, "_memory_store", None) is None:
                self._memory_store = EvolutionMemory(self.settings)
            return self._memory_store

    @property
    def registry(self):
        return self.evolution.registry

    def _retrieval_gate(self):
        from evorag.tools import regression_gate
        from evorag.tools.evolution import GateVerdict
        from evorag.tools.retrieval_eval import evaluate_golden

        settings = self.settings
        golden = settings.gate_golden_set or data_path("golden", "demo.jsonl")
        result, _ = evaluate_golden(self, golden, source=settings.gate_source, answers=False)
        gate = regression_gate.compare(result.metrics, regression_gate.load_baseline(settings.gate_baseline))
        reason = None if gate.passed else "; ".join(
            f"{r.metric} {r.baseline:.3f} -> {r.current:.3f}" for r in gate.regressions)
        return GateVerdict("retrieval", gate.passed, reason, details=gate.to_dict())

    def _rate_limiter(self):
        from evorag.tools.rate_limit import SlidingWindowLimiter

        return SlidingWindowLimiter(self.settings.home / "rate_limit.sqlite3", limit=self.settings.evolutions_per_hour)

    async def aadd_tool(self, path: Path, *, request: str = "", approver=None, principal: Principal | None = None):
        """Run a hand-written candidate directory through the gates; deploy if approved (operator role)."""
        from evorag.tools.approvals import PolicyApprover

        with self.acting(principal, "add_tool") as who:  # type: ignore[attr-defined]
            self._rate_limiter().acquire("evolution")
            return await self.evolution.run(Path(path), request=request or f"add tool from {Path(path).name}",
                                            approver=approver or PolicyApprover(assume_yes=False, principal=who))

    def add_tool(self, path: Path, **kwargs):
        return asyncio.run(self.aadd_tool(path, **kwargs))

    async def aevolve(self, request: str, *, approver, docs=(), on_event=None, model_client=None,
                      principal: Principal | None = None):
        """Let the agent team build a tool for ``request`` (operator role); see teams.run_evolution."""
        from evorag.teams import run_evolution

        with self.acting(principal, "evolve"):  # type: ignore[attr-defined]
            return await run_evolution(self, request, docs=docs, approver=approver, on_event=on_event,
                                       model_client=model_client)

    async def aheal(self, description: str, *, approver, on_event=None, model_client=None,
                    principal: Principal | None = None):
        """Run the health checks and repair what fails (operator role); see teams.run_healing."""
        from evorag.teams import run_healing

        with self.acting(principal, "heal"):  # type: ignore[attr-defined]
            return await run_healing(self, description, approver=approver, on_event=on_event,
                                     model_client=model_client)

    def find_gaps(self, *, threshold: float = 0.5, principal: Principal | None = None):
        """Knowledge gaps: weak answers and the links crawls did not follow (reads only: reader role)."""
        from evorag.teams import find_knowledge_gaps

        with self.acting(principal, "metrics"):  # type: ignore[attr-defined]
            return find_knowledge_gaps(self, threshold=threshold)

    async def afill_gaps(self, proposals, *, approver, on_event=None, principal: Principal | None = None):
        """Crawl approved gap proposals (operator role; each crawl is a MEDIUM-risk approval)."""
        from evorag.teams import fill_knowledge_gaps

        with self.acting(principal, "gaps"):  # type: ignore[attr-defined]
            return await fill_knowledge_gaps(self, proposals, approver=approver, on_event=on_event)

    async def arun_spec(self, path: Path, *, on_event=None, principal: Principal | None = None):
        """A scripted team run (operator role); its ``approve: yes`` approves LOW risk only."""
        from evorag.teams import run_spec

        with self.acting(principal, "evolve"):  # type: ignore[attr-defined]
            return await run_spec(self, Path(path), on_event=on_event)

    def call_tool(self, name: str, arguments: dict, *, principal: Principal | None = None):
        """Call a deployed tool in the sandbox (operator role)."""
        with self.acting(principal, "call_tool"):  # type: ignore[attr-defined]
            return self.registry.call(name, arguments)

    def versions(self, *, principal: Principal | None = None):
        with self.acting(principal, "list_versions"):  # type: ignore[attr-defined]
            return self.evolution.repository.versions()

    def rollback(self, version_id: str, *, principal: Principal | None = None):
        """Restore the tool set of a checkpoint (approver role): it can remove every deployed tool."""
        with self.acting(principal, "rollback"):  # type: ignore[attr-defined]
            return self.evolution.rollback(version_id)

    def pending_approvals(self, *, principal: Principal | None = None):
        with self.acting(principal, "list_approvals"):  # type: ignore[attr-defined]
            return self.evolution.approvals.pending()

    def decide_approval(self, approval_id: str, *, approve: bool, principal: Principal | None = None,
                        token: str | None = None, reason: str = ""):
        """Approve or reject a pending change (approver role); an approved candidate is deployed at once.

        Approving follows the risk rules (tools/approvals.py): HIGH also needs ``token`` (the human approval
        token) or a principal who logged in as a person (``Principal.human``, the UI). A refusal raises
        PermissionDeniedError or UserError and leaves the request pending.
        """
        operation = "approve" if approve else "reject"
        with self.acting(principal, operation) as who:  # type: ignore[attr-defined]
            pipeline = self.evolution
            verb = "approved" if approve else "rejected"
            request = pipeline.approvals.decide(approval_id, approve=approve, principal=who, token=token,
                                                reason=reason or f"{verb} by {who.name} ({who.via})")
            pipeline.audit.write(verb, approval_id=approval_id, risk=request.risk,
                                 reason=request.reason, proof=request.proof)
            if request.status == "approved" and "staged" in request.payload:
                return pipeline.deploy_approved(approval_id)
            # Nothing staged (a proposed crawl or rollback): the decision is recorded for the run that asked.
            return request
