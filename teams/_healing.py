"""Self-healing that listens: what the description is about, every check, a fix for each failure through its
gate, the checks again.

The description is ranked against the deployed tools, the sources and the metrics
(``evorag.teams._heal_targets``); those are checked first and reported (``about: tool word_count``). The checks
(``run_health_checks``, ``evorag.teams._heal_checks``) cover the parts, answer quality, the index alias and the
embedder setting, a sample of each web source's pages, and every deployed tool through its tests and its
recorded examples. Fixes that are deterministic (repairing a half-written index, resetting an interrupted deploy,
pointing the alias back at the filled collection of the configured model) are applied and validated by
re-running the checks. A source whose pages vanished is re-crawled after approval (MEDIUM risk). A failing tool
is diagnosed by the Code Debugger's model, whose repaired version goes through the same gates and approval as
any evolution; when the model proposes no usable fix, rolling back to the last checkpoint is proposed instead
(also behind approval). Configuration and environment findings propose the setting or command to an operator.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autogen_core.models import SystemMessage, UserMessage
from evorag.agents import extract_files, prompts
from evorag.agents._test_writer import ModelTestWriter
from evorag.teams._evolution import model_failure_error
from evorag.teams._heal_checks import (
    CheckResult,
    answer_quality_check,
    index_checks,
    source_checks,
    tool_example_problems,
)
from evorag.teams._heal_targets import Target, about_line, rank_targets
from evorag.teams._ports import TeamPorts
from evorag.tools.catalog import Catalog
from evorag.tools.environment_doctor import diagnose
from evorag.tools.metrics_store import METRIC_COLUMNS
from evorag.tools.sandbox import default_sandbox
from evorag.tools.stores import store_from_settings
from evorag.tools.tool_envs import LOCK_FILE
from evorag.tools.types import CrawlRequest

from evorag.errors import EvoragError, ExternalError, UserError


@dataclass(slots=True)
class HealingReport:
    description: str
    before: list[CheckResult]
    about: list[Target] = field(default_factory=list)  # what the description is about, checked first
    diagnosis: list[str] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    after: list[CheckResult] = field(default_factory=list)

    @property
    def healed(self) -> bool:
        return all(check.ok for check in self.after) if self.after else all(c.ok for c in self.before)

    def to_dict(self) -> dict:
        return {"description": self.description, "healed": self.healed, "about": [t.to_dict() for t in self.about],
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


def run_health_checks(ports: TeamPorts, *, focus: list[Target] | None = None) -> list[CheckResult]:
    """Every check, changing nothing; each failure names what is wrong and the fix it proposes. The parts
    (SQLite, the index ledger, git, the environment, the sandbox), answer quality, the index alias and embedder
    setting, a sample of each web source's pages, then every deployed tool (its tests and its recorded
    examples). ``focus`` (what a healing description is about) is checked first and more thoroughly."""
    settings, pipeline = ports.settings, ports.pipeline
    focus = focus or []
    focused = {kind: [t.name for t in focus if t.kind == kind] for kind in ("tool", "source")}
    checks: list[CheckResult] = []
    for name, path in (("catalog", settings.catalog_path), ("metrics", settings.metrics_path)):
        ok, detail = _sqlite_ok(path)
        checks.append(CheckResult(f"{name}_database", ok, detail, fix_kind=None if ok else "operator",
                                  fix="" if ok else f"restore {path} from a backup (evorag backup restore)"))
    pending = ports.index.half_written_pages()
    checks.append(CheckResult("index_consistency", not pending,
                              f"{pending} half-written pages" if pending else "no half-written pages",
                              fix_kind="repair" if pending else None,
                              fix="remove the half-written pages" if pending else ""))
    repository = pipeline.repository
    dirty = repository.repo.is_dirty(untracked_files=True)
    checks.append(CheckResult("plugin_repository", not dirty,
                              "uncommitted changes from an interrupted deploy" if dirty else "clean",
                              fix_kind="rollback" if dirty else None,
                              fix="reset the tool set to the last checkpoint" if dirty else ""))
    # The Dependency Validator's watch (what `evorag doctor` reports): pip check, drift from evorag's declared
    # requirements, the tools' dependency environments and their union lock. Fixing it is an operator's job.
    environment = diagnose(pipeline.environments, repository.root)
    missing = any("environment" in p and "is missing" in p for p in environment.problems)
    checks.append(CheckResult("environment", environment.ok, "; ".join(environment.problems)[:600]
                              or "evorag's environment and the tools' environments match their requirements",
                              fix_kind=None if environment.ok else "repair" if missing else "operator",
                              fix="" if environment.ok else "install the tools' environments again from their "
                              "locks (needs the package index)" if missing
                              else "run `evorag doctor` and install what it names"))
    checks.append(answer_quality_check(settings))
    checks += index_checks(settings, store_from_settings(settings))
    checks += source_checks(settings, focus=frozenset(focused["source"]))
    try:
        sandbox = default_sandbox(settings)
        checks.append(CheckResult("sandbox", True, sandbox.name))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks.append(CheckResult("sandbox", False, str(exc), fix_kind="operator",
                                  fix="install bubblewrap or docker (evorag doctor)"))
        return checks
    manifests = sorted(pipeline.registry.tools(), key=lambda m: (m.name not in focused["tool"], m.name))
    for manifest in manifests:
        checks.append(_tool_check(pipeline, manifest))
    return checks


def _tool_check(pipeline, manifest) -> CheckResult:
    """A deployed tool's own tests, when it has any, then its recorded examples (or one call that must run)."""
    tool_dir = pipeline.repository.tools_dir / manifest.name
    problems = []
    if list(tool_dir.glob("test_*.py")):
        # Deployed tools passed their approval (a human's, for HIGH risk): their tests may run now.
        # A previous major version kept callable (NAME_vMAJOR) still defines the function under the tool's name.
        verdict = pipeline.run_tests(tool_dir, manifest.pinned_of or manifest.name, manifest.parameters_schema,
                                     approved=True)
        if not verdict.ok:
            problems.append(verdict.reason or "its tests fail")
    problems += tool_example_problems(pipeline.registry, manifest)
    if not problems:
        return CheckResult(f"tool:{manifest.name}", True, "tests and examples pass", target=manifest.name)
    return CheckResult(f"tool:{manifest.name}", False, "; ".join(problems)[:1200], target=manifest.name,
                       fix_kind="repair", fix=f"repair {manifest.name} through the gates (else roll back)")


def _targets(ports: TeamPorts, description: str) -> list[Target]:
    tools = [(m.name, f"{m.description} {m.request}") for m in ports.pipeline.registry.tools()]
    sources = []
    if ports.settings.catalog_path.exists():
        catalog = Catalog(ports.settings.catalog_path)
        try:
            sources = [(s.name, s.start_url or "") for s in catalog.sources()]
        finally:
            catalog.close()
    return rank_targets(description, tools=tools, sources=sources, metrics=METRIC_COLUMNS)[:5]


async def run_healing(ports: TeamPorts, description: str, *, approver,
                      on_event: Callable[[object], None] | None = None) -> HealingReport:
    """What ``description`` is about (tools, sources, metrics) -> every check, those first -> a fix for each
    failure through its gate or approval -> the checks again."""
    pipeline = ports.pipeline
    emit = on_event or (lambda event: None)
    about = await asyncio.to_thread(_targets, ports, description)
    emit({"source": "heal_targets", "content": about_line(about)})
    before = await asyncio.to_thread(run_health_checks, ports, focus=about)
    report = HealingReport(description=description, before=before, about=about)
    pipeline.audit.write("healing_started", description=description, about=[t.label() for t in about],
                         failing=[c.name for c in before if not c.ok])
    emit({"source": "health_checks", "content": "; ".join(f"{c.name}: {'ok' if c.ok else c.detail}" for c in before)})
    named = {t.name for t in about}
    failing = sorted((c for c in before if not c.ok), key=lambda c: c.target not in named)  # the described first
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
        elif check.name == "index_alias" and check.fix.startswith("point the alias at"):
            report.diagnosis.append(f"{check.name}: {check.detail}")
            report.actions.append(await asyncio.to_thread(_repoint_alias, ports.settings, check))
        elif check.name == "environment" and check.fix_kind == "repair":  # a tool's environment is missing
            report.diagnosis.append(f"{check.name}: {check.detail}")
            report.actions.append(await asyncio.to_thread(_reinstall_environments, pipeline))
        elif check.name.startswith("source:"):
            report.diagnosis.append(f"{check.name}: {check.detail}")
            report.actions.append(await _recrawl(ports, check, approver))
        elif check.name.startswith("tool:") and check.target:
            try:
                client = client or ports.model_client()
            except UserError as exc:  # no model configured (provider none): the repair and its tests need one
                pipeline.audit.write("healing_finished", healed=False, status="no_model", reason=exc.message,
                                     actions=report.actions)
                raise
            try:
                report.actions.append(await _heal_tool(pipeline, check, client, approver, report, emit))
            except _ModelFailed as failure:
                error = model_failure_error(failure.error, "healing")
                pipeline.audit.write("healing_finished", healed=False, status="model_unavailable",
                                     reason=error.message, actions=report.actions)
                raise error from None
        else:
            report.diagnosis.append(f"{check.name}: {check.detail} (needs an operator: {check.fix or 'see above'})")
            report.actions.append({"check": check.name, "action": check.fix_kind or "operator",
                                   "status": "proposed", "fix": check.fix})
    report.after = await asyncio.to_thread(run_health_checks, ports, focus=about)
    pipeline.audit.write("healing_finished", healed=report.healed, actions=report.actions)
    return report


def _repoint_alias(settings, check: CheckResult) -> dict:
    """Point the alias back at the filled collection, whose model is the settings' (checked by index_checks):
    opening it activates it. Processes that already hold the empty collection open see it after a restart."""
    store = store_from_settings(settings)
    collection = next(c for c in store.collections() if c["collection"] == check.target)
    store.open(collection["model"], collection["dim"])
    return {"check": check.name, "action": "config", "status": "done", "fix": check.fix}


def _reinstall_environments(pipeline) -> dict:
    """Install the missing environments of the deployed tools again from their committed locks (the same
    hash-pinned, binary-only install as at deploy; it needs the package index)."""
    installed, failed = [], []
    for lock in sorted(pipeline.repository.tools_dir.glob(f"*/{LOCK_FILE}")):
        if pipeline.environments.installed(lock.read_text(encoding="utf-8")):
            continue
        try:
            pipeline.tool_environment(lock.parent)
            installed.append(lock.parent.name)
        except EvoragError as exc:
            failed.append(f"{lock.parent.name}: {exc}"[:300])
    return {"check": "environment", "action": "repair", "status": "failed" if failed else "done",
            "installed": installed, "reason": "; ".join(failed),
            "fix": "installed the tools' environments again from their locks"}


async def _recrawl(ports: TeamPorts, check: CheckResult, approver) -> dict:
    """Crawl a source whose pages vanished again (MEDIUM risk, like a gap crawl: after approval); the crawl
    removes the pages that are gone from the index."""
    pipeline = ports.pipeline
    catalog = Catalog(ports.settings.catalog_path)
    try:
        source = catalog.get_source(check.target)
    finally:
        catalog.close()
    if source is None or not source.start_url:
        return {"check": check.name, "action": "re-crawl", "status": "failed", "reason": "the source is gone"}
    start_url = source.start_url
    approval = pipeline.approvals.create(tool=check.target, risk="MEDIUM",
                                         summary=f"Re-crawl source {check.target} from {start_url}: {check.detail}",
                                         ttl=pipeline.approval_ttl)
    decision = await approver(approval)
    if not decision.approved:
        return {"check": check.name, "action": "re-crawl", "status": "pending" if decision.approved is None
                else "rejected", "approval_id": approval.id, "fix": check.fix}
    try:
        pipeline.approvals.apply(approval.id, decision)  # MEDIUM: whoever answered must be an approver
    except UserError as exc:
        return {"check": check.name, "action": "re-crawl", "status": "pending", "approval_id": approval.id,
                "reason": str(exc)}
    crawl = await ports.knowledge.acrawl(CrawlRequest(url=start_url, source=check.target))  # the home's settings
    return {"check": check.name, "action": "re-crawl", "status": "done", "pages": crawl.pages_indexed,
            "pages_removed": crawl.pages_removed}


class _ModelFailed(Exception):
    def __init__(self, error: EvoragError) -> None:
        super().__init__(str(error))
        self.error = error


def _reset_tool_set(pipeline) -> None:
    with pipeline.writer:  # a change of the deployed tool set, like a deploy
        pipeline.repository.recover()


async def _heal_tool(pipeline, check: CheckResult, client, approver, report: HealingReport, emit) -> dict:
    tool_dir = pipeline.repository.tools_dir / check.target
    files = {p.name: p.read_text() for p in sorted(tool_dir.glob("*.py"))}
    # The repair is a candidate like any other: it keeps the tool's requirements (the gates lock them again).
    requirements = tool_dir / "requirements.txt"
    kept = {"requirements.txt": requirements.read_text()} if requirements.is_file() else {}
    prompt = "\n\n".join(f"```python {name}\n{text}```" for name, text in files.items())
    if kept:
        prompt += f"\n\n```text requirements.txt\n{kept['requirements.txt']}```"
    prompt += f"\n\nFailing check {check.name}: {check.detail}"
    try:
        result = await client.create([SystemMessage(content=prompts.HEALER),
                                      UserMessage(content=prompt, source="user")])
    except (ExternalError, UserError) as exc:  # the model's failure ends the healing (see run_healing)
        raise _ModelFailed(exc) from exc
    reply = result.content if isinstance(result.content, str) else str(result.content)
    diagnosis = reply.strip().splitlines()[0][:300] if reply.strip() else "no diagnosis from the model"
    report.diagnosis.append(f"{check.target}: {diagnosis}")
    emit({"source": "code_debugger", "content": reply[:2000]})
    fixed = extract_files(reply)
    if "tool.py" in fixed or any(name.startswith("test_") for name in fixed):
        with tempfile.TemporaryDirectory(prefix="evorag-heal-") as tmp:
            candidate = Path(tmp)
            for name, text in {**files, **kept, **fixed}.items():
                (candidate / name).write_text(text)
            # A repair of a tool deployed without tests (before every deploy needed them) gets them from the
            # same model: no deploy without tests.
            outcome = await pipeline.run(candidate, request=f"heal {check.target}: {check.detail}", approver=approver,
                                         test_writer=_healing_test_writer(client))
        return {"check": check.name, "action": "repair", "status": outcome.status, "gate": outcome.gate,
                "reason": outcome.reason, "version": outcome.version_id, "approval_id": outcome.approval_id}
    return await _propose_rollback(pipeline, check, approver)


def _healing_test_writer(client):
    """The test writer over the healing's model; its failure ends the healing like the repair's (see
    run_healing)."""
    writer = ModelTestWriter.over_client(client)

    async def write(request):
        try:
            return await writer(request)
        except (ExternalError, UserError) as exc:
            raise _ModelFailed(exc) from exc

    return write


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
