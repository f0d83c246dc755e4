"""Self-healing: run the health checks, diagnose a failure, propose a fix, validate it through the gates.

Fixes that are deterministic (repairing a half-written index, resetting an interrupted deploy) are
applied and validated by re-running the check. A deployed tool whose own tests fail is diagnosed by the
Code Debugger's model, whose repaired version goes through the same gates and approval as any evolution;
when the model proposes no usable fix, rolling back to the last checkpoint where the tool passed is
proposed instead (also behind approval).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autogen_core.models import SystemMessage, UserMessage
from evorag.agents import extract_files, prompts
from evorag.teams._ports import TeamPorts
from evorag.tools.sandbox import default_sandbox

from evorag.errors import UserError


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    target: str | None = None  # e.g. the failing tool's name

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class HealingReport:
    description: str
    before: list[CheckResult]
    diagnosis: list[str] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    after: list[CheckResult] = field(default_factory=list)

    @property
    def healed(self) -> bool:
        return all(check.ok for check in self.after) if self.after else all(c.ok for c in self.before)

    def to_dict(self) -> dict:
        return {"description": self.description, "healed": self.healed,
                "before": [c.to_dict() for c in self.before], "diagnosis": self.diagnosis,
                "actions": self.actions, "after": [c.to_dict() for c in self.after]}


def _sqlite_ok(path: Path) -> tuple[bool, str]:
    if not path.exists():
        return True, "not created yet"
    connection = sqlite3.connect(path)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
    return result == "ok", result


def run_health_checks(ports: TeamPorts) -> list[CheckResult]:
    """Fast checks of every part; each failure names what is wrong (blocking: SQLite, git, the sandbox)."""
    settings, pipeline = ports.settings, ports.pipeline
    checks: list[CheckResult] = []
    for name, path in (("catalog", settings.catalog_path), ("metrics", settings.metrics_path)):
        ok, detail = _sqlite_ok(path)
        checks.append(CheckResult(f"{name}_database", ok, detail))
    pending = ports.index.half_written_pages()
    checks.append(CheckResult("index_consistency", not pending,
                              f"{pending} half-written pages" if pending else "no half-written pages"))
    repository = pipeline.repository
    dirty = repository.repo.is_dirty(untracked_files=True)
    checks.append(CheckResult("plugin_repository", not dirty,
                              "uncommitted changes from an interrupted deploy" if dirty else "clean"))
    try:
        sandbox = default_sandbox(settings)
        checks.append(CheckResult("sandbox", True, sandbox.name))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks.append(CheckResult("sandbox", False, str(exc)))
        return checks
    for manifest in pipeline.registry.tools():
        tool_dir = repository.tools_dir / manifest.name
        if not list(tool_dir.glob("test_*.py")):
            continue
        # Deployed tools passed their approval (a human's, for HIGH risk): their tests may run now.
        verdict = pipeline.run_tests(tool_dir, manifest.name, manifest.parameters_schema, approved=True)
        checks.append(CheckResult(f"tool:{manifest.name}", verdict.ok,
                                  verdict.reason or "tests pass", target=manifest.name))
    return checks


async def run_healing(ports: TeamPorts, description: str, *, approver,
                      on_event: Callable[[object], None] | None = None) -> HealingReport:
    pipeline = ports.pipeline
    emit = on_event or (lambda event: None)
    before = await asyncio.to_thread(run_health_checks, ports)
    report = HealingReport(description=description, before=before)
    pipeline.audit.write("healing_started", description=description,
                         failing=[c.name for c in before if not c.ok])
    emit({"source": "health_checks", "content": "; ".join(f"{c.name}: {'ok' if c.ok else c.detail}" for c in before)})
    failing = [c for c in before if not c.ok]
    if not failing:
        report.diagnosis.append("all health checks pass; nothing to heal")
        report.after = before
        return report
    client = None
    for check in failing:
        if check.name == "index_consistency":
            fixed = await asyncio.to_thread(ports.index.repair_index)
            report.diagnosis.append(f"{check.detail}: a crawl was interrupted while writing")
            report.actions.append({"check": check.name, "action": "removed half-written pages", "pages": fixed})
        elif check.name == "plugin_repository":
            await asyncio.to_thread(_reset_tool_set, pipeline)
            report.diagnosis.append("a deploy was interrupted before its checkpoint commit")
            report.actions.append({"check": check.name, "action": "reset the tool set to the last checkpoint"})
        elif check.target:
            client = client or ports.model_client()
            report.actions.append(await _heal_tool(pipeline, check, client, approver, report, emit))
        else:
            report.diagnosis.append(f"{check.name}: {check.detail} (needs an operator)")
    report.after = await asyncio.to_thread(run_health_checks, ports)
    pipeline.audit.write("healing_finished", healed=report.healed, actions=report.actions)
    return report


def _reset_tool_set(pipeline) -> None:
    with pipeline.writer:  # a change of the deployed tool set, like a deploy
        pipeline.repository.recover()


async def _heal_tool(pipeline, check: CheckResult, client, approver, report: HealingReport, emit) -> dict:
    tool_dir = pipeline.repository.tools_dir / check.target
    files = {p.name: p.read_text() for p in sorted(tool_dir.glob("*.py"))}
    prompt = "\n\n".join(f"```python {name}\n{text}```" for name, text in files.items())
    prompt += f"\n\nFailing check {check.name}: {check.detail}"
    result = await client.create([SystemMessage(content=prompts.HEALER), UserMessage(content=prompt, source="user")])
    reply = result.content if isinstance(result.content, str) else str(result.content)
    diagnosis = reply.strip().splitlines()[0][:300] if reply.strip() else "no diagnosis from the model"
    report.diagnosis.append(f"{check.target}: {diagnosis}")
    emit({"source": "code_debugger", "content": reply[:2000]})
    fixed = extract_files(reply)
    if "tool.py" in fixed or any(name.startswith("test_") for name in fixed):
        with tempfile.TemporaryDirectory(prefix="evorag-heal-") as tmp:
            candidate = Path(tmp)
            for name, text in {**files, **fixed}.items():
                (candidate / name).write_text(text)
            outcome = await pipeline.run(candidate, request=f"heal {check.target}: {check.detail}", approver=approver)
        return {"check": check.name, "action": "repair", "status": outcome.status, "gate": outcome.gate,
                "reason": outcome.reason, "version": outcome.version_id, "approval_id": outcome.approval_id}
    return await _propose_rollback(pipeline, check, approver)


async def _propose_rollback(pipeline, check: CheckResult, approver) -> dict:
    """Roll back to the newest checkpoint before the tool's current version, after approval."""
    versions = await asyncio.to_thread(pipeline.repository.versions)
    if len(versions) < 2:
        return {"check": check.name, "action": "none", "reason": "no earlier checkpoint to roll back to"}
    target = versions[-2]
    approval = pipeline.approvals.create(tool=check.target, risk="MEDIUM",
                                         summary=f"Roll back to {target.id} ({target.message}) to heal {check.name}",
                                         ttl=pipeline.approval_ttl)
    decision = await approver(approval)
    if not decision.approved:
        return {"check": check.name, "action": "rollback", "status": "pending" if decision.approved is None
                else "rejected", "approval_id": approval.id}
    try:
        pipeline.approvals.apply(approval.id, decision)  # the risk rules apply to whoever answered
    except UserError as exc:
        return {"check": check.name, "action": "rollback", "status": "pending", "approval_id": approval.id,
                "reason": str(exc)}
    version, _ = await asyncio.to_thread(pipeline.rollback, target.id)  # holds the writer slot
    return {"check": check.name, "action": "rollback", "status": "done", "version": version.id}
