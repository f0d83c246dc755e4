"""The self-evolution half of the service: deployed tools, the gate pipeline, versions, approvals."""

from __future__ import annotations

import asyncio
from pathlib import Path

from evorag.settings import Settings


def data_path(*parts: str) -> Path:
    return Path(__file__).parent.joinpath(*parts)


class EvolutionMixin:
    """Self-evolution: deployed tools, the gate pipeline, versions and approvals."""

    settings: Settings

    @property
    def evolution(self):
        from tools.approvals import ApprovalStore
        from tools.audit import AuditLog
        from tools.evolution import EvolutionPipeline
        from tools.plugins import PluginRepository, ToolRegistry
        from tools.sandbox import default_sandbox

        with self._lock:  # type: ignore[attr-defined]
            if self._evolution is None:  # type: ignore[has-type]
                settings = self.settings
                secrets = [v.get_secret_value() for v in (settings.approval_token, settings.openai_api_key,
                                                          settings.qdrant_api_key) if v is not None]
                repository = PluginRepository(settings.plugins_path)
                sandbox_factory = lambda: default_sandbox(settings)  # resolved per call: a daemon may come and go
                token = settings.approval_token.get_secret_value() if settings.approval_token else None
                self._evolution = EvolutionPipeline(
                    repository=repository,
                    registry=ToolRegistry(repository, sandbox_factory),
                    sandbox_factory=sandbox_factory,
                    approvals=ApprovalStore(settings.home / "approvals.sqlite3", human_token=token),
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
        from tools.memory import EvolutionMemory

        with self._lock:  # type: ignore[attr-defined]
            if getattr(self, "_memory_store", None) is None:
                self._memory_store = EvolutionMemory(self.settings)
            return self._memory_store

    @property
    def registry(self):
        return self.evolution.registry

    def _retrieval_gate(self):
        from tools import regression_gate
        from tools.evolution import GateVerdict
        from tools.retrieval_eval import evaluate_golden

        settings = self.settings
        golden = settings.gate_golden_set or data_path("golden", "demo.jsonl")
        result, _ = evaluate_golden(self, golden, source=settings.gate_source, answers=False)
        gate = regression_gate.compare(result.metrics, regression_gate.load_baseline(settings.gate_baseline))
        reason = None if gate.passed else "; ".join(
            f"{r.metric} {r.baseline:.3f} -> {r.current:.3f}" for r in gate.regressions)
        return GateVerdict("retrieval", gate.passed, reason, details=gate.to_dict())

    def _rate_limiter(self):
        from tools.rate_limit import SlidingWindowLimiter

        return SlidingWindowLimiter(self.settings.home / "rate_limit.sqlite3", limit=self.settings.evolutions_per_hour)

    async def aadd_tool(self, path: Path, *, request: str = "", approver=None):
        """Run a hand-written candidate directory through the gates; deploy if approved."""
        from tools.approvals import PolicyApprover

        self._rate_limiter().acquire("evolution")
        return await self.evolution.run(Path(path), request=request or f"add tool from {Path(path).name}",
                                        approver=approver or PolicyApprover(assume_yes=False))

    def add_tool(self, path: Path, **kwargs):
        return asyncio.run(self.aadd_tool(path, **kwargs))

    def versions(self):
        return self.evolution.repository.versions()

    def rollback(self, version_id: str):
        return self.evolution.rollback(version_id)

    def pending_approvals(self):
        return self.evolution.approvals.pending()

    def decide_approval(self, approval_id: str, *, approve: bool, by: str, human: bool = False,
                        token: str | None = None, reason: str = ""):
        """Approve or reject a pending change; an approval deploys it at once."""
        request = self.evolution.approvals.decide(approval_id, approve=approve, by=by, human=human, token=token,
                                                  reason=reason)
        if request.status == "approved":
            return self.evolution.deploy_approved(approval_id)
        self.evolution.audit.write("rejected", approval_id=approval_id, by=by, reason=reason)
        return request


