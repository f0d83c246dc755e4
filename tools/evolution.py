"""The evolution pipeline: a candidate tool goes through deterministic gates, then approval, then deploy.

Gates, in order (the first failure stops the candidate, with its gate and reason):
  LOW/MEDIUM: code -> dependencies -> sandbox tests (generated edge cases + own tests)
              -> retrieval regression gate (when a baseline is configured) -> approval by risk -> deploy.
  HIGH:       code -> dependencies -> retrieval regression gate -> approval by a human
              -> sandbox tests -> deploy only if they pass.
The risk is known after the two static gates (the maximum over every file of the candidate, tests included),
so a HIGH-risk candidate's code never runs, even in the sandbox, before a human has approved it. The tests gate
judges the JUnit results of every expected test, not pytest's exit status (see ``evorag.tools.tests_gate``).
The agents propose and repair candidates; only these gates decide. Every step goes to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.tools import tests_gate
from evorag.tools.approvals import ApprovalStore, Approver
from evorag.tools.audit import AuditLog
from evorag.tools.candidate_dir import read_candidate
from evorag.tools.code_checks import CodeCheckResult, check_candidate, max_risk
from evorag.tools.dependencies import check_dependencies
from evorag.tools.plugins import PluginRepository, ToolManifest, ToolRegistry
from evorag.tools.sandbox import Limits

from evorag.errors import UserError

RESERVED_TOOL_NAMES = frozenset({
    "perform_rag_query_with_metrics", "search_code_examples", "get_available_sources",
    "crawl_and_index_documentation", "get_job_status", "cancel_job", "evolve_rag_capability",
    "self_heal_system", "list_versions", "rollback", "get_metrics_report", "list_pending_approvals",
    "approve", "reject",
})
CANDIDATE_FILES = ("tool.py", "requirements.txt")
TESTS_DEFERRED = ("not run yet: the candidate is HIGH risk, so its tests and the generated edge cases run in the "
                  "sandbox only after a human approves it, and it deploys only if they pass")
# Written into the sandbox workdir next to the candidate (see tools/gate_runner.py).
_GATE_SOURCES = {"runner": Path(__file__).with_name("gate_runner.py"), "plugin": Path(__file__).with_name("gate_plugin.py")}


@dataclass(slots=True)
class GateVerdict:
    gate: str
    ok: bool
    reason: str | None = None
    risk: str = "LOW"
    details: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(slots=True)
class EvolutionOutcome:
    status: str  # deployed | rejected | pending
    gate: str | None  # the gate that decided (failed, or "approval"/"deploy")
    reason: str | None
    risk: str
    tool: str | None = None
    version_id: str | None = None
    approval_id: str | None = None
    verdicts: list[GateVerdict] = field(default_factory=list)
    run_id: str = ""
    tokens: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_files(path: Path) -> dict[str, str]:
    """The candidate's files by name (tool.py, requirements.txt, test_*.py), read without following links.

    Symbolic links, hard links, special files, subdirectories, oversized, too many or non-UTF-8 files are
    refused with a one-line UserError before anything is read (see ``evorag.tools.candidate_dir``).
    """
    return read_candidate(Path(path))


def _edge_case_values(schema: dict) -> list:
    kind = schema.get("type")
    if "enum" in schema:
        return list(schema["enum"])
    if isinstance(kind, list):
        return [v for k in kind for v in _edge_case_values({"type": k})]
    return {
        "string": ["", "a" * 5000, "ünïcødé ✓", "  ", "\n\t"],
        "integer": [0, -1, 1, 10**9],
        "number": [0.0, -1.5, 1e12],
        "boolean": [True, False],
        "array": [[]],
        "object": [{}],
        "null": [None],
    }.get(kind, [None])


def edge_cases(schema: dict) -> list[dict]:
    """The keyword arguments the generated edge-case test calls the tool with: a base case (defaults, else
    a non-empty value per parameter), then each boundary value of one argument at a time."""
    properties = schema.get("properties", {})
    base = {}
    for name, spec in properties.items():
        if "default" in spec:
            base[name] = spec["default"]
        else:
            values = _edge_case_values(spec)
            base[name] = next((v for v in values if v not in ("", 0, None, [], {})), values[0])
    cases = [dict(base)]
    for name, spec in properties.items():
        for value in _edge_case_values(spec):
            cases.append({**base, name: value})
    return cases


def generated_edge_case_test(function: str, schema: dict) -> str:
    """A pytest module calling the tool with boundary values, one argument at a time.

    A tool may refuse bad input with ValueError/TypeError (clean validation); any other exception, or
    a result that is not JSON-serialisable, fails the test. One parametrized case per ``edge_cases(schema)``
    entry: the tests gate requires exactly that many passed cases.
    """
    cases = edge_cases(schema)
    return f'''"""Edge cases generated by evorag from the tool's signature."""
import json
import pytest
from tool import {function}

CASES = json.loads({json.dumps(json.dumps(cases))})


@pytest.mark.parametrize("kwargs", CASES)
def test_edge_case(kwargs):
    try:
        result = {function}(**kwargs)
    except (ValueError, TypeError):
        return
    json.dumps(result)
'''


def candidate_risk(path: Path) -> tuple[str, list[str]]:
    """The risk of the candidate and why (``file:line: reason``): the highest over every Python file, tool.py
    and its test files alike (they run in the sandbox and are committed with the tool). A file the analyser
    cannot read is HIGH. The rules are in ``tools/risk_rules.py``."""
    result = check_candidate(candidate_files(path))
    return result.risk, result.risk_reasons


class EvolutionPipeline:
    def __init__(
        self,
        *,
        repository: PluginRepository,
        registry: ToolRegistry,
        sandbox_factory: Callable[[], object],
        approvals: ApprovalStore,
        audit: AuditLog,
        staging_dir: Path,
        dependency_allowlist: list[str] | None = None,
        resolve_dependencies: bool = True,
        retrieval_gate: Callable[[], GateVerdict] | None = None,
        test_timeout: float = 120.0,
        approval_ttl: float = 3600.0,
        memory=None,
        writer: contextlib.AbstractContextManager | None = None,
    ) -> None:
        self.approval_ttl = approval_ttl
        self.repository = repository
        self.registry = registry
        self.sandbox_factory = sandbox_factory
        self.approvals = approvals
        self.audit = audit
        self.staging_dir = staging_dir
        self.dependency_allowlist = dependency_allowlist
        self.resolve_dependencies = resolve_dependencies
        self.retrieval_gate = retrieval_gate
        self.test_timeout = test_timeout
        self.memory = memory
        # Held around every change of the deployed tool set (deploy, rollback): the application's one writer
        # slot, so a deploy never interleaves with a crawl or another deploy. A thread lock: both run in threads.
        self.writer = writer if writer is not None else contextlib.nullcontext()

    # Individual gates (the agents call these as tools too)
    def check_dependencies(self, path: Path) -> GateVerdict:
        started = time.monotonic()
        report = check_dependencies(path, allowlist=self.dependency_allowlist, resolve=self.resolve_dependencies)
        return GateVerdict("dependencies", report.ok, report.reason, report.risk,
                           {"risk_reasons": report.risk_reasons, "new_requirements": report.new_requirements,
                            "docker_lines": report.docker_lines}, round(time.monotonic() - started, 3))

    def check_code(self, path: Path) -> tuple[GateVerdict, object]:
        """The code gate over every file of the candidate: tool.py's signature and lint, and the risk, the
        highest over tool.py and its test files (they run in the sandbox like the tool)."""
        started = time.monotonic()
        try:
            result = check_candidate(candidate_files(path))
        except UserError as exc:  # a link, a special file...: nothing was read, the gate fails with why
            result = CodeCheckResult.refused(str(exc))
        reason = result.reason
        ok = result.ok
        if ok and result.function.name in RESERVED_TOOL_NAMES:
            ok, reason = False, f"tool name {result.function.name!r} is reserved by evorag"
        details = {"risk_reasons": result.risk_reasons,
                   "lint": [str(f) for f in result.lint], "security": [str(f) for f in result.security]}
        return GateVerdict("code", ok, reason, result.risk, details, round(time.monotonic() - started, 3)), result

    def run_tests(self, path: Path, function: str, schema: dict, *, risk: str | None = None,
                  approved: bool = False) -> GateVerdict:
        """The generated edge cases, then the candidate's own tests, in the sandbox only; judged from the
        JUnit results the runner carries out (see ``evorag.tools.tests_gate``), never from the exit status.

        A HIGH-risk candidate's code runs only after a human approved it: unless ``approved``, a candidate whose
        ``risk`` (default: the code gate's rating of all its files) is HIGH is not run, and the verdict says so
        (``details["deferred"]``); deploying its approval runs the tests then.
        """
        started = time.monotonic()

        def verdict(ok: bool, reason: str | None, **details) -> GateVerdict:
            return GateVerdict("tests", ok, reason, details=details, seconds=round(time.monotonic() - started, 3))

        files = candidate_files(path)
        own_files = {name: text for name, text in files.items() if name.startswith("test_")}
        own_tests = sorted(own_files)
        if not approved:
            risk = risk or self.check_code(path)[0].risk
            if risk == "HIGH":
                return verdict(True, TESTS_DEFERRED, deferred=True, own_tests=own_tests, output=TESTS_DEFERRED)
        problem = tests_gate.check_test_files(own_files)
        if problem:
            return verdict(False, problem, own_tests=own_tests, output="")
        cases = edge_cases(schema)
        edge_expected = [tests_gate.ExpectedTest(tests_gate.EDGE_CASE_FILE.removesuffix(".py"), "test_edge_case",
                                                 len(cases), exact=True)]
        own_expected = [t for name, text in own_files.items() for t in tests_gate.expected_tests(name, text)]
        nonce = secrets.token_hex(16)
        plan = {"nonce": nonce, "runs": [
            {"name": "edge cases", "files": [f"/work/{tests_gate.EDGE_CASE_FILE}"]},
            *([{"name": "own tests", "files": [f"/work/{name}" for name in own_tests]}] if own_tests else []),
        ]}
        with tempfile.TemporaryDirectory(prefix="evorag-candidate-") as tmp:
            work = Path(tmp)
            for name, text in files.items():
                (work / name).write_text(text)
            (work / tests_gate.EDGE_CASE_FILE).write_text(generated_edge_case_test(function, schema))
            (work / tests_gate.RUNNER_FILE).write_text(_GATE_SOURCES["runner"].read_text())
            (work / tests_gate.PLUGIN_FILE).write_text(_GATE_SOURCES["plugin"].read_text())
            result = self.sandbox_factory().run(
                work, ["python", "-I", f"/work/{tests_gate.RUNNER_FILE}"],
                limits=Limits(wall_seconds=self.test_timeout), stdin=json.dumps(plan).encode(),
            )
        results, output, problem = tests_gate.extract_frame(result.stdout, nonce)
        output = (output + result.stderr)[-4000:]
        if result.timed_out or result.killed_reason:
            return verdict(False, f"killed in the sandbox: {result.killed_reason or 'timeout'}",
                           output=output, own_tests=own_tests)
        if problem:
            return verdict(False, f"{problem}: {_first_failure(output)}"[:400], output=output, own_tests=own_tests,
                           exit_code=result.exit_code)
        runs = {run.get("name"): run for run in results["runs"] if isinstance(run, dict)}
        judged = [tests_gate.judge_run(runs.get("edge cases"), edge_expected, "edge cases")]
        if own_tests:
            judged.append(tests_gate.judge_run(runs.get("own tests"), own_expected, "own tests"))
        failed = next((j for j in judged if not j.ok), None)
        if failed is None and result.exit_code != 0:
            failed = tests_gate.RunVerdict(False, f"the test runner exited with status {result.exit_code}")
        return verdict(failed is None, failed.reason if failed else None, output=output, own_tests=own_tests,
                       exit_code=result.exit_code, passed=sum(j.passed for j in judged))

    # The whole pipeline
    async def run(self, path: Path, *, request: str, approver: Approver, run_id: str | None = None) -> EvolutionOutcome:
        """Read the candidate once (refusing links and special files), then run every gate on that snapshot:
        what the gates judged is what gets staged, approved and deployed, even if the directory changes."""
        files = candidate_files(Path(path))
        with tempfile.TemporaryDirectory(prefix="evorag-snapshot-") as tmp:
            snapshot = Path(tmp)
            for name, text in files.items():
                (snapshot / name).write_text(text, encoding="utf-8")
            return await self._run_gates(snapshot, request=request, approver=approver, run_id=run_id)

    async def _run_gates(self, path: Path, *, request: str, approver: Approver, run_id: str | None) -> EvolutionOutcome:
        run_id = run_id or uuid.uuid4().hex[:12]
        path = Path(path)
        files = candidate_files(path)
        self.audit.write("candidate", run_id=run_id, request=request, files=sorted(files))
        verdicts: list[GateVerdict] = []

        def stop(verdict: GateVerdict) -> EvolutionOutcome:
            outcome = EvolutionOutcome("rejected", verdict.gate, verdict.reason, max_risk(*(v.risk for v in verdicts)),
                                       verdicts=verdicts, run_id=run_id)
            self.audit.write("rejected", run_id=run_id, gate=verdict.gate, reason=verdict.reason)
            self.remember(request, outcome)
            return outcome

        # The code gate first: a file that does not parse has no imports to validate.
        code, code_result = await asyncio.to_thread(self.check_code, path)
        verdicts.append(code)
        self.audit.write("gate", run_id=run_id, **_brief(code))
        if not code.ok:
            return stop(code)
        signature = code_result.function

        dependencies = await asyncio.to_thread(self.check_dependencies, path)  # pip runs here
        verdicts.append(dependencies)
        self.audit.write("gate", run_id=run_id, **_brief(dependencies))
        if not dependencies.ok:
            return stop(dependencies)

        # The static gates have rated every file: a HIGH-risk candidate's code (its tests included) runs in
        # the sandbox only after a human approves it; LOW/MEDIUM ones are tested before the approval.
        risk = max_risk(code.risk, dependencies.risk)
        if risk != "HIGH":
            tests = await asyncio.to_thread(self.run_tests, path, signature.name, signature.json_schema, risk=risk)
            verdicts.append(tests)
            self.audit.write("gate", run_id=run_id, **_brief(tests))
            if not tests.ok:
                return stop(tests)

        if self.retrieval_gate is not None:
            retrieval = await asyncio.to_thread(self.retrieval_gate)
            verdicts.append(retrieval)
            self.audit.write("gate", run_id=run_id, **_brief(retrieval))
            if not retrieval.ok:
                return stop(retrieval)

        approval = self.request_approval(path, signature, verdicts, request=request, run_id=run_id)
        outcome = await self.decide(approval, approver, verdicts, run_id=run_id)
        if outcome is not None:
            if outcome.status == "rejected":
                self.remember(request, outcome)
            return outcome
        # In a thread: for a HIGH-risk candidate the deploy runs its tests in the sandbox first.
        return await asyncio.to_thread(self._deploy, self.approvals.get(approval.id), verdicts, run_id)

    def request_approval(self, path: Path, signature, verdicts: list[GateVerdict], *, request: str, run_id: str):
        """Stage the candidate and open an approval request carrying its risk, diff and test output."""
        risk = max_risk(*(v.risk for v in verdicts))
        reasons = [r for v in verdicts for r in v.details.get("risk_reasons", [])]
        dependencies = next((v for v in verdicts if v.gate == "dependencies"), None)
        tests = next((v for v in verdicts if v.gate == "tests" and not v.details.get("deferred")), None)
        # HIGH risk: nothing of the candidate has run yet; the deploy after the approval runs the tests.
        tests_after_approval = tests is None and risk == "HIGH"
        staged = self._stage(path, run_id)
        manifest = ToolManifest(
            name=signature.name, description=signature.docstring, parameters_schema=signature.json_schema,
            risk=risk, request=request,
            requirements=dependencies.details.get("new_requirements", []) if dependencies else [],
        )
        summary = f"Deploy tool '{signature.name}' for: {request}"
        if tests_after_approval:
            summary += f" (tests {TESTS_DEFERRED})"
        approval = self.approvals.create(
            tool=signature.name, risk=risk, summary=summary,
            diff=self.diff(staged, signature.name),
            tests=(f"Tests {TESTS_DEFERRED}." if tests_after_approval
                   else tests.details.get("output", "")[-1500:] if tests else ""),
            risk_reasons=reasons, ttl=self.approval_ttl,
            payload={"staged": str(staged), "manifest": manifest.to_dict(), "run_id": run_id,
                     "digest": _digest(staged), "tests_after_approval": tests_after_approval},
        )
        self.audit.write("approval_requested", run_id=run_id, approval_id=approval.id, risk=risk)
        return approval

    async def decide(self, approval, approver: Approver, verdicts: list[GateVerdict], *, run_id: str):
        """Ask the approver. Returns None when approved (deploy next), else the pending/rejected outcome."""
        decision = await approver(approval)
        if decision.approved is None:
            self.audit.write("approval_pending", run_id=run_id, approval_id=approval.id, reason=decision.reason)
            return EvolutionOutcome("pending", "approval", decision.reason, approval.risk, tool=approval.tool,
                                    approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        current = self.approvals.get(approval.id)
        if current.status == "pending":  # an approver that records its own decisions has done so already
            try:
                # The store applies the risk rules (role, proof of a person) to who answered, whatever the channel.
                current = self.approvals.apply(approval.id, decision)
            except UserError as exc:  # the answer could not approve it: it waits for someone who can
                self.audit.write("approval_pending", run_id=run_id, approval_id=approval.id, reason=str(exc))
                return EvolutionOutcome("pending", "approval", str(exc), approval.risk, tool=approval.tool,
                                        approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        if current.status != "approved":
            reason = f"{current.status} by {current.decided_by}: {current.reason}"
            verdicts.append(GateVerdict("approval", False, reason, approval.risk))
            self.audit.write("rejected", run_id=run_id, gate="approval", reason=reason)
            return EvolutionOutcome("rejected", "approval", reason, approval.risk, tool=approval.tool,
                                    approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        verdicts.append(GateVerdict("approval", True, f"approved by {current.decided_by}", approval.risk))
        self.audit.write("approved", run_id=run_id, approval_id=approval.id, by=current.decided_by,
                         via=current.decided_via, proof=current.proof)
        return None

    def deploy(self, approval_id: str, verdicts: list[GateVerdict], *, run_id: str) -> EvolutionOutcome:
        return self._deploy(self.approvals.get(approval_id), verdicts, run_id)

    def deploy_approved(self, approval_id: str) -> EvolutionOutcome:
        """Deploy a candidate whose pending approval was granted later (UI, CLI, MCP)."""
        request = self.approvals.get(approval_id)
        if request.status != "approved":
            raise UserError(f"approval {approval_id} is {request.status}, not approved")
        run_id = request.payload.get("run_id", approval_id)
        return self._deploy(request, [GateVerdict("approval", True, f"approved by {request.decided_by}", request.risk)],
                            run_id)

    def _deploy(self, approval, verdicts: list[GateVerdict], run_id: str) -> EvolutionOutcome:
        staged = Path(approval.payload["staged"])
        if not staged.is_dir() or _digest(staged) != approval.payload.get("digest"):
            verdict = GateVerdict("deploy", False, "the approved candidate changed or vanished after approval",
                                  approval.risk)
            verdicts.append(verdict)
            self.audit.write("rejected", run_id=run_id, gate="deploy", reason=verdict.reason)
            return EvolutionOutcome("rejected", "deploy", verdict.reason, approval.risk, verdicts=verdicts, run_id=run_id)
        manifest = ToolManifest(**approval.payload["manifest"])
        if approval.payload.get("tests_after_approval"):
            tests = self.run_tests(staged, manifest.name, manifest.parameters_schema, approved=True)
            verdicts.append(tests)
            self.audit.write("gate", run_id=run_id, **_brief(tests))
            if not tests.ok or _digest(staged) != approval.payload.get("digest"):
                reason = tests.reason or "the approved candidate changed while its tests ran"
                self.audit.write("rejected", run_id=run_id, gate="tests", reason=reason)
                shutil.rmtree(staged, ignore_errors=True)  # approved code that failed its tests never deploys
                return EvolutionOutcome("rejected", "tests", reason, approval.risk, tool=manifest.name,
                                        approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        with self.writer:
            version = self.repository.deploy(staged, manifest, message=manifest.request or "deployed")
            change = self.registry.refresh()
        self.audit.write("deployed", run_id=run_id, tool=manifest.name, version=version.id,
                         added=change.added, updated=change.updated)
        shutil.rmtree(staged, ignore_errors=True)
        outcome = EvolutionOutcome("deployed", "deploy", None, approval.risk, tool=manifest.name,
                                   version_id=version.id, approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        self.remember(manifest.request, outcome)
        return outcome

    def rollback(self, version_id: str):
        with self.writer:
            version = self.repository.rollback(version_id)
            change = self.registry.refresh()
        self.audit.write("rollback", version=version_id, new_checkpoint=version.id, removed=change.removed,
                         added=change.added)
        return version, change

    def diff(self, staged: Path, name: str) -> str:
        """Unified diff of the candidate against the deployed tool of the same name (all new if none)."""
        new = (staged / "tool.py").read_text().splitlines(keepends=True)
        old_path = self.repository.tools_dir / name / "tool.py"
        old = old_path.read_text().splitlines(keepends=True) if old_path.exists() else []
        return "".join(difflib.unified_diff(old, new, f"deployed/{name}/tool.py", f"candidate/{name}/tool.py"))[:20000]

    def _stage(self, path: Path, run_id: str) -> Path:
        staged = self.staging_dir / run_id
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        for name, text in candidate_files(path).items():
            (staged / name).write_text(text)
        return staged

    def remember(self, request: str, outcome: EvolutionOutcome) -> None:
        """Record a finished run in the long-term memory (advisory: a memory failure is only audited)."""
        if self.memory is None:
            return
        try:
            self.memory.record_outcome(request, outcome)
        except Exception as exc:  # noqa: BLE001 - memory is advisory; never fail a run on it
            self.audit.write("memory_error", error=str(exc))


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _brief(verdict: GateVerdict) -> dict:
    return {"gate": verdict.gate, "ok": verdict.ok, "reason": verdict.reason, "risk": verdict.risk,
            "seconds": verdict.seconds}


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("FAILED", "ERROR", "E ")) or "Error" in stripped.split(":")[0]:
            return stripped[:300]
    tail = [line for line in output.splitlines() if line.strip()]
    return (tail[-1] if tail else "tests failed")[:300]
