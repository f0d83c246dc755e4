"""The evolution pipeline: a candidate tool goes through deterministic gates, then approval, then deploy.

Gates, in order (the first failure stops the candidate, with its gate and reason):
  LOW/MEDIUM: code -> dependencies -> sandbox tests (generated edge cases + own tests)
              -> retrieval regression gate (when a baseline is configured) -> approval by risk -> deploy.
  HIGH:       code -> dependencies -> retrieval regression gate -> approval by a human
              -> sandbox tests -> deploy only if they pass.
The risk is known after the two static gates (the maximum over every file of the candidate, tests included),
so a HIGH-risk candidate's code never runs, even in the sandbox, before a human has approved it. The tests gate
judges the JUnit results of every expected test, not pytest's exit status (see ``evorag.tools.tests_gate``).
A redeploy also goes through the compatibility gate (before the retrieval gate; ``evorag.tools.compat_gate``):
it sets the next semantic version, and a breaking change is HIGH; after its approval the previous version's tests
that still apply run against the new code (gate ``previous_tests``) before the previous major version is kept as
``NAME_vMAJOR`` and the new one deployed with its migration guide.
Every deploy, after its approval: the plugin regression suite (every other deployed tool's tests, gate
``deployed_tests``), then the tool's examples recorded in the sandbox (gate ``examples``), the deploy, and one
call per example through the live registry (gate ``smoke``): a failure there rolls the deploy back at once.
The tests gate runs the candidate's own tests under coverage.py and fails below ``min_coverage``.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.tools import tests_gate
from evorag.tools.approvals import ApprovalStore, Approver
from evorag.tools.audit import AuditLog
from evorag.tools.candidate_dir import read_candidate
from evorag.tools.code_checks import CodeCheckResult, check_candidate, max_risk
from evorag.tools.compat_gate import applicable_previous_tests, check_compatibility
from evorag.tools.dependencies import check_dependencies
from evorag.tools.plugins import PluginRepository, ToolManifest, ToolRegistry
from evorag.tools.plugins._registry import call_in_sandbox
from evorag.tools.sandbox import Limits
from evorag.tools.test_writing import (
    NO_TESTS_NO_MODEL,
    TEST_FILE_NAME,
    TestRequest,
    TestWriter,
    has_tests,
    signature_text,
)
from evorag.tools.tool_envs import LOCK_FILE, ToolEnvironments, parse_lock
from evorag.tools.tool_examples import example_inputs, normalized

from evorag.errors import EvoragError, UserError

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
    status: str  # deployed | rejected | pending | model_unavailable (an agent team's model failed)
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
        min_coverage: float = 80.0,
        approval_ttl: float = 3600.0,
        memory=None,
        writer: contextlib.AbstractContextManager | None = None,
        environments: ToolEnvironments | None = None,
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
        self.min_coverage = min_coverage  # percent of tool.py's statements its own tests must run
        self.memory = memory
        # Held around every change of the deployed tool set (deploy, rollback): the application's one writer
        # slot, so a deploy never interleaves with a crawl or another deploy. A thread lock: both run in threads.
        self.writer = writer if writer is not None else contextlib.nullcontext()
        # Where the tools' locked dependencies are installed (EVORAG_HOME/envs, next to the plugins repository).
        self.environments = environments or ToolEnvironments(repository.root.parent / "envs")

    # Individual gates (the agents call these as tools too)
    def check_dependencies(self, path: Path, *, replacing: str | None = None) -> GateVerdict:
        """The dependency gate; the deployed tools' locks bind the resolution (but ``replacing``'s own). A new
        dependency must come out of it locked (pinned and hashed): only a lock can be installed for the tests
        and calls. A version conflict's verdict carries a ``proposal`` (also at the end of its reason)."""
        started = time.monotonic()
        report = check_dependencies(path, allowlist=self.dependency_allowlist, resolve=self.resolve_dependencies,
                                    deployed=self.repository.tools_dir, replacing=replacing)
        ok, reason = report.ok, report.reason
        if ok and report.new_requirements and not report.lock:
            ok, reason = False, (f"new dependency {report.new_requirements[0]} cannot be locked: dependency "
                                 "resolution is off (set resolve_dependencies=true so that pip pins and hashes it)")
        return GateVerdict("dependencies", ok, reason, report.risk,
                           {"risk_reasons": report.risk_reasons, "new_requirements": report.new_requirements,
                            "docker_lines": report.docker_lines, "lock": report.lock, "proposal": report.proposal,
                            "resolved": report.resolved}, round(time.monotonic() - started, 3))

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

    def check_static(self, path: Path) -> tuple[list[GateVerdict], object]:
        """The code gate and the dependency gate run at once, judged as if one after the other: the verdicts up
        to the first failure (code, then dependencies) and the code gate's result. They read the same files and
        neither needs the other's verdict; the dependency check runs pip, the code checks parse in this thread.
        After a failed code gate the dependency verdict (or error) is dropped, as the sequential order never
        reached it, but it is waited for: no check outlives the call. Without requirements to resolve the
        dependency check takes milliseconds and a thread costs more than it saves: they run in order then
        (bench/bench_gates.py measures both)."""
        if not _lists_requirements(path):
            code, result = self.check_code(path)
            return ([code, self.check_dependencies(path)] if code.ok else [code]), result
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evorag-dependency-gate") as pool:
            dependencies = pool.submit(self.check_dependencies, path)
            code, result = self.check_code(path)
            if not code.ok:
                return [code], result
            return [code, dependencies.result()], result

    def run_tests(self, path: Path, function: str, schema: dict, *, risk: str | None = None,
                  approved: bool = False, min_coverage: float | None = None) -> GateVerdict:
        """The generated edge cases, then the candidate's own tests, in the sandbox only; judged from the
        JUnit results the runner carries out (see ``evorag.tools.tests_gate``), never from the exit status.

        A HIGH-risk candidate's code runs only after a human approved it: unless ``approved``, a candidate whose
        ``risk`` (default: the code gate's rating of all its files) is HIGH is not run, and the verdict says so
        (``details["deferred"]``); deploying its approval runs the tests then.

        The candidate's own tests run under coverage.py, measuring tool.py only: the figure is in
        ``details["coverage"]`` (percent; None without own tests) and in the output, and a candidate below
        ``min_coverage`` (default: the pipeline's, EVORAG_MIN_COVERAGE) fails. A deployed tool's tests (a folder
        of the plugin repository: the regression suite, healing) are measured, not gated: they passed their
        own gate when they were deployed.
        """
        started = time.monotonic()

        def verdict(ok: bool, reason: str | None, **details) -> GateVerdict:
            return GateVerdict("tests", ok, reason, details=details, seconds=round(time.monotonic() - started, 3))

        files = candidate_files(path)
        own_files = {name: text for name, text in files.items() if name.startswith("test_")}
        own_tests = sorted(own_files)
        if not approved:
            # A new dependency is HIGH too: it is installed (and the code that imports it runs) only after approval.
            risk = risk or max_risk(self.check_code(path)[0].risk,
                                    check_dependencies(path, allowlist=self.dependency_allowlist, resolve=False).risk)
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
            *([{"name": "own tests", "files": [f"/work/{name}" for name in own_tests], "coverage": "/work/tool.py"}]
              if own_tests else []),
        ]}
        with tempfile.TemporaryDirectory(prefix="evorag-candidate-") as tmp:
            work = Path(tmp)
            for name, text in files.items():
                (work / name).write_text(text)
            (work / tests_gate.EDGE_CASE_FILE).write_text(generated_edge_case_test(function, schema))
            (work / tests_gate.RUNNER_FILE).write_text(_GATE_SOURCES["runner"].read_text())
            (work / tests_gate.PLUGIN_FILE).write_text(_GATE_SOURCES["plugin"].read_text())
            try:
                python_env = self.tool_environment(path) if approved else None
            except EvoragError as exc:
                return verdict(False, f"the tool's locked dependencies could not be installed: {exc}",
                               own_tests=own_tests, output="")
            result = self.sandbox_factory().run(
                work, ["python", "-I", f"/work/{tests_gate.RUNNER_FILE}"],
                limits=Limits(wall_seconds=self.test_timeout), stdin=json.dumps(plan).encode(),
                python_env=python_env,
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
        percent = None
        if failed is None and own_tests:
            if min_coverage is None:
                deployed = Path(path).resolve().parent == self.repository.tools_dir.resolve()
                min_coverage = 0.0 if deployed else self.min_coverage
            percent, problem = _judge_coverage(runs["own tests"].get("coverage"), min_coverage)
            output += f"\ncoverage of tool.py by its own tests: {problem or f'{percent:.1f}%'}"
            if problem and min_coverage > 0:
                failed = tests_gate.RunVerdict(False, problem)
        return verdict(failed is None, failed.reason if failed else None, output=output, own_tests=own_tests,
                       exit_code=result.exit_code, passed=sum(j.passed for j in judged), coverage=percent)

    async def write_tests(self, path: Path, signature, writer: TestWriter | None, *, rounds: int = 3,
                          risk: str | None = None) -> GateVerdict:
        """The tests gate for a candidate without tests: ``writer`` (a model) writes a pytest file into ``path``,
        which the same gates judge as hand-written tests (the static test-file check, the code gate's risk
        rating, the sandboxed run with coverage). A run that fails (a test, the coverage) goes back to the
        writer with the failure, for at most ``rounds`` drafts; a writer that says the tool is wrong, tests the
        static check refuses or tests that raise the candidate's risk end it at once. Without ``writer`` the
        candidate is refused (no deploy without tests). On success the written files stay in ``path`` (they are
        committed with the tool) and ``details["written_tests"]`` names them; on failure they are removed. A
        HIGH-risk candidate's written tests are only checked here: like its own tests, they run after approval,
        and a failure then refuses the deploy (no model is asked again)."""
        started = time.monotonic()
        path = Path(path)
        written: dict[str, str] = {}

        def refuse(reason: str, **details) -> GateVerdict:
            for name in written:
                (path / name).unlink(missing_ok=True)
            return GateVerdict("tests", False, reason[:600], details={"written_tests": [], "output": "", **details},
                               seconds=round(time.monotonic() - started, 3))

        if writer is None:
            return refuse(NO_TESTS_NO_MODEL)
        baseline = self.check_code(path)[0].risk  # the written tests must not raise it
        request = TestRequest(signature.name, signature_text(signature), (path / "tool.py").read_text("utf-8"))
        last = "the writer wrote no test file"
        for draft_number in range(1, max(rounds, 1) + 1):
            draft = await writer(request)
            if draft.tool_bug:
                why = " ".join(draft.tool_bug.split())[:300]
                return refuse(f"the tests written for the tool show a fault in the tool, not in its tests: {why}"
                              + (f" (the failing run: {request.failure.splitlines()[0][:200]})"
                                 if request.failure and request.failure.strip() else ""), tool_bug=True, rounds=draft_number)
            files = {name: text for name, text in draft.files.items()
                     if TEST_FILE_NAME.fullmatch(name) and name != tests_gate.EDGE_CASE_FILE}
            if not files:
                last = "the reply held no test file (a fenced block ```python test_<name>.py ...```)"
                request = TestRequest(request.function, request.signature, request.source, {}, last)
                continue
            problem = tests_gate.check_test_files(files)
            if problem:
                return refuse(f"the tests written for the tool are refused by the test-file check: {problem}",
                              rounds=draft_number)
            for name in written:
                (path / name).unlink(missing_ok=True)
            written = files
            for name, text in files.items():
                (path / name).write_text(text, encoding="utf-8")
            code = (await asyncio.to_thread(self.check_code, path))[0]
            if not code.ok or max_risk(baseline, code.risk) != baseline:
                why = code.reason or "; ".join(code.details.get("risk_reasons", [])[:3])
                return refuse(f"the tests written for the tool raise its risk to {code.risk}: {why}",
                              rounds=draft_number)
            tests = await asyncio.to_thread(self.run_tests, path, signature.name, signature.json_schema,
                                            risk=risk)
            if tests.ok:
                tests.details.update(written_tests=sorted(files), rounds=draft_number)
                tests.seconds = round(time.monotonic() - started, 3)
                return tests
            last = tests.reason or "the tests failed"
            output = tests.details.get("output", "")[-1500:]
            request = TestRequest(request.function, request.signature, request.source, files,
                                  f"{last}\n{output}".strip())
        return refuse(f"no passing tests with enough coverage after {max(rounds, 1)} drafts written for the tool: "
                      f"{last}", rounds=max(rounds, 1))

    # The whole pipeline
    async def run(self, path: Path, *, request: str, approver: Approver, run_id: str | None = None,
                  test_writer: TestWriter | None = None, test_rounds: int = 3) -> EvolutionOutcome:
        """Read the candidate once (refusing links and special files), then run every gate on that snapshot:
        what the gates judged is what gets staged, approved and deployed, even if the directory changes.
        A candidate without tests gets them from ``test_writer`` (see ``write_tests``), else it is refused."""
        files = candidate_files(Path(path))
        with tempfile.TemporaryDirectory(prefix="evorag-snapshot-") as tmp:
            snapshot = Path(tmp)
            for name, text in files.items():
                (snapshot / name).write_text(text, encoding="utf-8")
            return await self._run_gates(snapshot, request=request, approver=approver, run_id=run_id,
                                         test_writer=test_writer, test_rounds=test_rounds)

    async def _run_gates(self, path: Path, *, request: str, approver: Approver, run_id: str | None,
                         test_writer: TestWriter | None = None, test_rounds: int = 3) -> EvolutionOutcome:
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

        dependencies = await asyncio.to_thread(self.check_dependencies, path, replacing=signature.name)  # pip
        verdicts.append(dependencies)
        self.audit.write("gate", run_id=run_id, **_brief(dependencies))
        if not dependencies.ok:
            return stop(dependencies)

        # The static gates have rated every file: a HIGH-risk candidate's code (its tests included) runs in
        # the sandbox only after a human approves it; LOW/MEDIUM ones are tested before the approval.
        risk = max_risk(code.risk, dependencies.risk)
        if not has_tests(files):
            # No deploy without tests: the writer writes them (a HIGH-risk candidate's run only after approval).
            tests = await self.write_tests(path, signature, test_writer, rounds=test_rounds, risk=risk)
            verdicts.append(tests)
            self.audit.write("gate", run_id=run_id, **_brief(tests))
            if not tests.ok:
                return stop(tests)
            self.audit.write("tests_written", run_id=run_id, files=tests.details["written_tests"],
                             rounds=tests.details["rounds"], coverage=tests.details.get("coverage"))
        elif risk != "HIGH":
            tests = await asyncio.to_thread(self.run_tests, path, signature.name, signature.json_schema, risk=risk)
            verdicts.append(tests)
            self.audit.write("gate", run_id=run_id, **_brief(tests))
            if not tests.ok:
                return stop(tests)

        # A redeploy's compatibility with the deployed version: a breaking change is HIGH (a person approves it).
        compatibility = await asyncio.to_thread(self.check_compatibility, signature)
        verdicts.append(compatibility)
        self.audit.write("gate", run_id=run_id, **_brief(compatibility))
        if not compatibility.ok:
            return stop(compatibility)

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
        # The last dependency verdict: a team may have checked its plan's requirements before the code existed.
        dependencies = next((v for v in reversed(verdicts) if v.gate == "dependencies"), None)
        tests = next((v for v in verdicts if v.gate == "tests" and not v.details.get("deferred")), None)
        # HIGH risk: nothing of the candidate has run yet; the deploy after the approval runs the tests.
        tests_after_approval = tests is None and risk == "HIGH"
        lock = dependencies.details.get("lock", "") if dependencies else ""
        staged = self._stage(path, run_id, lock=lock)
        compatibility = next((v for v in reversed(verdicts) if v.gate == "compatibility"), None)
        if compatibility is None:  # a team's run: its graph has no compatibility step, so it is checked here
            compatibility = self.check_compatibility(signature)
            verdicts.append(compatibility)
            self.audit.write("gate", run_id=run_id, **_brief(compatibility))
            risk = max_risk(risk, compatibility.risk)
            reasons += compatibility.details["risk_reasons"]
        versioning = compatibility.details
        manifest = ToolManifest(
            semver=versioning.get("semver", "1.0.0"), returns=signature.returns,
            return_schema=signature.return_schema,
            name=signature.name, description=signature.docstring, parameters_schema=signature.json_schema,
            risk=risk, request=request,
            requirements=dependencies.details.get("new_requirements", []) if dependencies else [],
            coverage=tests.details.get("coverage") if tests else None,
        )
        summary = f"Deploy tool '{signature.name}' for: {request}"
        if lock:
            pins = ", ".join(item.pin() for item in parse_lock(lock))
            summary += (f" (adds dependencies {pins}: locked with hashes, installed into the tool's environment "
                        "after approval)")
        if versioning.get("level") == "breaking":
            summary += f" (BREAKING, version {versioning['semver']}: {compatibility.reason})"
        if tests_after_approval:
            summary += f" (tests {TESTS_DEFERRED})"
        approval = self.approvals.create(
            tool=signature.name, risk=risk, summary=summary,
            diff=self.diff(staged, signature.name),
            tests=(f"Tests {TESTS_DEFERRED}." if tests_after_approval
                   else tests.details.get("output", "")[-1500:] if tests else ""),
            risk_reasons=reasons, ttl=self.approval_ttl,
            payload={"staged": str(staged), "manifest": manifest.to_dict(), "run_id": run_id,
                     "digest": _digest(staged), "tests_after_approval": tests_after_approval,
                     "compatibility": {"ok": compatibility.ok, "reason": compatibility.reason, **versioning}},
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
        """Deploy the candidate of an approved request; any other status is a rejection at the deploy gate
        (a team graph's edges decide who speaks, never what gets deployed)."""
        approval = self.approvals.get(approval_id)
        if approval.status != "approved":
            reason = f"approval {approval_id} is {approval.status}, not approved"
            verdicts.append(GateVerdict("deploy", False, reason, approval.risk))
            self.audit.write("rejected", run_id=run_id, gate="deploy", reason=reason)
            return EvolutionOutcome("rejected", "deploy", reason, approval.risk, tool=approval.tool,
                                    approval_id=approval_id, verdicts=verdicts, run_id=run_id)
        return self._deploy(approval, verdicts, run_id)

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
        # Only code the pipeline staged itself deploys: an approval whose record names a folder elsewhere (an
        # edited approvals database) is refused even when that folder matches the recorded digest.
        inside = staged.resolve().is_relative_to(self.staging_dir.resolve()) and not staged.is_symlink()
        if not inside or not staged.is_dir() or _digest(staged) != approval.payload.get("digest"):
            reason = ("the approved candidate changed or vanished after approval" if inside else
                      "the approval names a candidate outside the staging folder")
            verdict = GateVerdict("deploy", False, reason, approval.risk)
            verdicts.append(verdict)
            self.audit.write("rejected", run_id=run_id, gate="deploy", reason=verdict.reason)
            return EvolutionOutcome("rejected", "deploy", verdict.reason, approval.risk, verdicts=verdicts, run_id=run_id)
        manifest = ToolManifest(**approval.payload["manifest"])
        if approval.payload.get("tests_after_approval"):
            tests = self.run_tests(staged, manifest.name, manifest.parameters_schema, approved=True)
            verdicts.append(tests)
            self.audit.write("gate", run_id=run_id, **_brief(tests))
            manifest.coverage = tests.details.get("coverage")
            if not tests.ok or _digest(staged) != approval.payload.get("digest"):
                reason = tests.reason or "the approved candidate changed while its tests ran"
                self.audit.write("rejected", run_id=run_id, gate="tests", reason=reason)
                shutil.rmtree(staged, ignore_errors=True)  # approved code that failed its tests never deploys
                return EvolutionOutcome("rejected", "tests", reason, approval.risk, tool=manifest.name,
                                        approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        compatibility = approval.payload.get("compatibility") or {}
        previous_tests = self._previous_tests_gate(staged, manifest, compatibility)
        if previous_tests is not None:
            verdicts.append(previous_tests)
            self.audit.write("gate", run_id=run_id, **_brief(previous_tests))
            if not previous_tests.ok:
                self.audit.write("rejected", run_id=run_id, gate=previous_tests.gate, reason=previous_tests.reason)
                shutil.rmtree(staged, ignore_errors=True)
                return EvolutionOutcome("rejected", previous_tests.gate, previous_tests.reason, approval.risk,
                                        tool=manifest.name, approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        suite = self.deployed_tests(replacing=manifest.name)
        verdicts.append(suite)
        self.audit.write("gate", run_id=run_id, **_brief(suite))
        if not suite.ok:
            self.audit.write("rejected", run_id=run_id, gate=suite.gate, reason=suite.reason)
            shutil.rmtree(staged, ignore_errors=True)
            return EvolutionOutcome("rejected", suite.gate, suite.reason, approval.risk, tool=manifest.name,
                                    approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        examples = self.record_examples(staged, manifest)
        verdicts.append(examples)
        self.audit.write("gate", run_id=run_id, **_brief(examples))
        if not examples.ok:
            self.audit.write("rejected", run_id=run_id, gate=examples.gate, reason=examples.reason)
            shutil.rmtree(staged, ignore_errors=True)
            return EvolutionOutcome("rejected", examples.gate, examples.reason, approval.risk, tool=manifest.name,
                                    approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        manifest.examples = examples.details["examples"]
        with self.writer:
            previous = self.repository.current()
            version = self.repository.deploy(staged, manifest, message=manifest.request or "deployed",
                                             pin_previous=compatibility.get("pinned"),
                                             migration=compatibility.get("migration", ""))
            change = self.registry.refresh()
            self.audit.write("deployed", run_id=run_id, tool=manifest.name, version=version.id,
                             added=change.added, updated=change.updated)
            shutil.rmtree(staged, ignore_errors=True)
            # Still holding the writer slot: no other deploy can come between this one and its rollback.
            smoke = self.smoke_call(manifest)
            verdicts.append(smoke)
            self.audit.write("gate", run_id=run_id, **_brief(smoke))
            if not smoke.ok:
                restored = self.repository.rollback(previous.id)
                self.registry.refresh()
                reason = f"rolled back: {smoke.reason}; the tool set is back at {previous.id}"
                self.audit.write("rolled_back", run_id=run_id, tool=manifest.name, version=version.id,
                                 restored=previous.id, new_checkpoint=restored.id, reason=smoke.reason)
                outcome = EvolutionOutcome("rejected", "smoke", reason, approval.risk, tool=manifest.name,
                                           approval_id=approval.id, verdicts=verdicts, run_id=run_id)
                self.remember(manifest.request, outcome)
                return outcome
        outcome = EvolutionOutcome("deployed", "deploy", None, approval.risk, tool=manifest.name,
                                   version_id=version.id, approval_id=approval.id, verdicts=verdicts, run_id=run_id)
        self.remember(manifest.request, outcome)
        return outcome

    def record_examples(self, staged: Path, manifest: ToolManifest) -> GateVerdict:
        """Gate ``examples``: call the approved, tested candidate in the sandbox with its example inputs and
        record the outputs (for its manifest). Which inputs: ``evorag.tools.tool_examples``. An author's example
        that breaks the schema or fails refuses the deploy; a generated one the tool refuses is not recorded."""
        import jsonschema  # as the registry validates a live call's arguments

        started = time.monotonic()
        function = manifest.pinned_of or manifest.name
        schema = manifest.parameters_schema

        def verdict(ok: bool, reason: str | None, recorded: list[dict], source: str = "") -> GateVerdict:
            return GateVerdict("examples", ok, reason, details={"examples": recorded, "source": source},
                               seconds=round(time.monotonic() - started, 3))

        try:
            inputs, source = example_inputs((staged / "tool.py").read_text(encoding="utf-8"), function, schema)
            python_env = self.tool_environment(staged)
        except (ValueError, SyntaxError, EvoragError) as exc:
            return verdict(False, f"the tool's examples cannot be recorded: {exc}"[:400], [])
        recorded = []
        for arguments in inputs:
            shown = normalized(arguments)[:200]
            try:
                jsonschema.validate(arguments, schema)
                result = call_in_sandbox(self.sandbox_factory(), staged, function, arguments,
                                         timeout=self.test_timeout, python_env=python_env)
            except (jsonschema.ValidationError, EvoragError) as exc:
                if source == "generated":
                    continue  # the tool refused the generated input: clean validation, no example to record
                why = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
                return verdict(False, f"the example {shown} ({source}) fails: {why}"[:400], [], source)
            recorded.append({"arguments": arguments, "result": result, "source": source})
        return verdict(True, None, recorded, source)

    def smoke_call(self, manifest: ToolManifest) -> GateVerdict:
        """Gate ``smoke``, right after a deploy: call the tool through the live registry with each recorded
        example; an exception or an output other than the recorded one fails (the deploy is then rolled back)."""
        started = time.monotonic()
        for example in manifest.examples:
            arguments = example.get("arguments") or {}
            call = f"{manifest.name}({normalized(arguments)[:200]})"
            try:
                result = self.registry.call(manifest.name, arguments, timeout=self.test_timeout)
            except EvoragError as exc:
                reason = f"{call} through the live registry failed: {exc}"
            else:
                if normalized(result) == normalized(example.get("result")):
                    continue
                reason = (f"{call} through the live registry returned {normalized(result)[:200]}, not the output "
                          f"recorded in the sandbox, {normalized(example.get('result'))[:200]}")
            return GateVerdict("smoke", False, reason[:600], seconds=round(time.monotonic() - started, 3))
        return GateVerdict("smoke", True, None, details={"calls": len(manifest.examples)},
                           seconds=round(time.monotonic() - started, 3))

    def check_compatibility(self, signature) -> GateVerdict:
        """The compatibility gate: the candidate against the deployed tool of the same name (see
        ``evorag.tools.compat_gate``); details carry the next semantic version and, when breaking, the guide."""
        started = time.monotonic()
        check = check_compatibility(self.repository.tools_dir, signature)
        details = {**check.details, "risk_reasons": [check.reason] if check.risk == "HIGH" and check.reason else []}
        return GateVerdict("compatibility", check.ok, check.reason, check.risk, details,
                           round(time.monotonic() - started, 3))

    def _previous_tests_gate(self, staged: Path, manifest: ToolManifest, compatibility: dict) -> GateVerdict | None:
        """Before a breaking redeploy (approved): the deployed version's tests that still apply, run against the
        new code; they must pass. None when the change is not breaking (the candidate's own tests decide)."""
        if compatibility.get("level") == "refused" or compatibility.get("ok") is False:
            return GateVerdict("compatibility", False, compatibility.get("reason"), "HIGH")
        if compatibility.get("level") != "breaking":
            return None
        started = time.monotonic()
        files, skipped = applicable_previous_tests(self.repository.tools_dir / manifest.name, staged)
        details = {"ran": sorted(files), "skipped": skipped}
        if not files:
            return GateVerdict("previous_tests", True, "none of the previous version's tests applies to the new "
                               "signature", "HIGH", details, round(time.monotonic() - started, 3))
        with tempfile.TemporaryDirectory(prefix="evorag-previous-tests-") as tmp:
            work = Path(tmp)
            for name in ("tool.py", "requirements.txt", LOCK_FILE):
                if (staged / name).is_file():
                    shutil.copy2(staged / name, work / name)
            for name, text in files.items():
                (work / name).write_text(text, encoding="utf-8")
            # The previous version's tests were written for other code: they must pass, not cover it.
            tests = self.run_tests(work, manifest.name, manifest.parameters_schema, approved=True, min_coverage=0)
        reason = None if tests.ok else f"a test of the previous version that still applies fails: {tests.reason}"
        return GateVerdict("previous_tests", tests.ok, reason, "HIGH",
                           {**details, "output": tests.details.get("output", "")},
                           round(time.monotonic() - started, 3))

    def deployed_tests(self, *, replacing: str | None = None) -> GateVerdict:
        """The plugin regression suite (gate ``deployed_tests``): every deployed tool's tests (its own and its
        generated edge cases) run again in the sandbox, each with its own locked environment; one failure
        refuses the deploy, naming the tool and the test. ``replacing`` (the tool being redeployed) is left
        out: its previous tests are the compatibility gate's business.

        Tools are isolated from each other: each runs alone with its tool.py, its tests and its own lock's
        environment, so a deploy cannot change another tool's code. What can change under a deployed tool is
        what they share: evorag's interpreter and packages (upgraded since it was deployed), its installed
        environment (damaged, removed and no longer installable) and the sandbox. Since a deploy changes none of
        these for the other tools, running their tests now is running them against the tool set after the
        deploy; the suite catches that drift before one more tool is added on top of it."""
        started = time.monotonic()
        ran: list[str] = []
        for manifest in sorted(self.registry.tools(), key=lambda m: m.name):
            if manifest.name == replacing:
                continue
            tool_dir = self.repository.tools_dir / manifest.name
            # Deployed tools passed their approval (a human's, for HIGH risk): their tests may run.
            tests = self.run_tests(tool_dir, manifest.pinned_of or manifest.name, manifest.parameters_schema,
                                   approved=True)
            if not tests.ok:
                reason = (f"deployed tool {manifest.name} fails its tests: {tests.reason} (the deploy would add a "
                          "tool on top of a broken tool set; see `evorag heal`)")
                return GateVerdict("deployed_tests", False, reason[:600], details={
                    "ran": ran, "failed": manifest.name, "output": tests.details.get("output", "")},
                    seconds=round(time.monotonic() - started, 3))
            ran.append(manifest.name)
        return GateVerdict("deployed_tests", True, None, details={"ran": ran},
                           seconds=round(time.monotonic() - started, 3))

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

    def _stage(self, path: Path, run_id: str, *, lock: str = "") -> Path:
        """The candidate's files, plus the lock the dependency gate computed (the approval's digest covers it;
        a lock file the candidate brought is never read)."""
        staged = self.staging_dir / run_id
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        for name, text in candidate_files(path).items():
            (staged / name).write_text(text)
        if lock:
            (staged / LOCK_FILE).write_text(lock, encoding="utf-8")
        return staged

    def tool_environment(self, tool_dir: Path) -> Path | None:
        """The installed environment of an approved tool directory's lock (a staged candidate or a deployed
        tool), installing it first if needed; None when it has no lock. Raises EvoragError when pip fails."""
        lock = Path(tool_dir) / LOCK_FILE
        if not lock.is_file():
            return None
        text = lock.read_text(encoding="utf-8")
        if self.environments.installed(text):
            return self.environments.site(text)
        started = time.monotonic()
        site = self.environments.for_lock(text)
        if site is not None:
            self.audit.write("tool_environment_installed", env=site.parent.name, folder=Path(tool_dir).name,
                             seconds=round(time.monotonic() - started, 3))
        return site

    def remember(self, request: str, outcome: EvolutionOutcome) -> None:
        """Record a finished run in the long-term memory (advisory: a memory failure is only audited)."""
        if self.memory is None:
            return
        try:
            self.memory.record_outcome(request, outcome)
        except Exception as exc:  # noqa: BLE001 - memory is advisory; never fail a run on it
            self.audit.write("memory_error", error=str(exc))


def _lists_requirements(path: Path) -> bool:
    """Whether the candidate's requirements.txt names anything (pip may run for it); a link is not read."""
    file = Path(path) / "requirements.txt"
    if not file.is_file() or file.is_symlink():
        return False
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _brief(verdict: GateVerdict) -> dict:
    return {"gate": verdict.gate, "ok": verdict.ok, "reason": verdict.reason, "risk": verdict.risk,
            "seconds": verdict.seconds}


def _judge_coverage(measured: object, minimum: float) -> tuple[float | None, str | None]:
    """(percent, why it fails the gate) from the runner's coverage record of the own tests' run."""
    if not isinstance(measured, dict) or not isinstance(measured.get("percent"), (int, float)):
        why = measured.get("error") if isinstance(measured, dict) else "no coverage figure"
        return None, f"the coverage of tool.py could not be measured: {why}"[:300]
    percent = float(measured["percent"])
    if percent + 1e-9 >= minimum:
        return percent, None
    missing = measured.get("missing") or []
    lines = ", ".join(str(line) for line in missing[:12]) + (" ..." if len(missing) > 12 else "")
    return percent, (f"its own tests cover {percent:.1f}% of tool.py's {measured.get('statements')} statements, "
                     f"below the minimum of {minimum:g}% (EVORAG_MIN_COVERAGE); lines not run: {lines}")


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("FAILED", "ERROR", "E ")) or "Error" in stripped.split(":")[0]:
            return stripped[:300]
    tail = [line for line in output.splitlines() if line.strip()]
    return (tail[-1] if tail else "tests failed")[:300]
