"""The tests gate's evidence: which tests must run, what the runner reported, and whether that is a pass.

The gate never trusts pytest's exit status alone. It passes a candidate only when a machine-readable result
(pytest's JUnit XML, carried out of the sandbox by ``tools/gate_runner.py`` inside a frame keyed by a nonce)
shows every expected test as passed: the generated edge cases, whose number the host knows exactly, and every
test function the host reads in the candidate's test files (from their AST, never by importing them).

Threat model: what a hostile test file can and cannot fake
-----------------------------------------------------------
A candidate's tests run in the same process as pytest, so inside that process they can do anything pytest can.
What the gate does not rely on, because test code controls it:
- the exit status (``os._exit(0)``, ``sys.exit(0)``, a crash at import): no result -> the gate fails;
- the list of tests pytest found (a module-level ``pytest.skip``, deleting test functions at import, a
  collection hook that deselects everything, a file with no tests): the host reads the expected tests from
  the source and refuses a file that defines none, a test that did not run, and any skip;
- the output stream (a fake "passed" line or a forged result frame): the frame is keyed by a nonce that only
  the runner process holds (given on stdin, the process made non-dumpable), the host accepts exactly one
  frame, and a frame lost in an output flood means "no result";
- files the test code can write (a forged ``junit.xml`` in /tmp): pytest overwrites it at its normal end, and a
  run that did not reach that end (``tools/gate_plugin.py`` reports it on a pipe) fails whatever files it left;
  the runner reads each run's XML as soon as that run's pytest exits, and the XML is parsed strictly (size
  cap, no DTD, anything malformed fails).
What it cannot fake: the generated edge cases. They run in a separate pytest process started before, and
independent of, the candidate's test files, which are never imported there; only ``tool.py`` is, and that is
the code being deployed, rated by the code gate.
What it could still fake: the outcome of its OWN tests, by tampering with the runner from inside the process
(pytest's ``request``/``monkeypatch`` fixtures, ``_pytest`` internals, frames, ``gc``). The gate refuses the
pytest-specific channels statically (``check_test_files``: only ``tmp_path`` and the file's own fixtures,
a short allowlist of ``pytest`` attributes, no hooks, no runner internals), and the generic ones (frames, gc,
sys, dynamic code, processes, file writes outside temp) make the candidate's risk HIGH in the code gate,
whose tests then run only after a human has read and approved the code. So a passing verdict means: the
edge cases passed in a process the candidate's tests never touched, and every test the reviewer can see in
the test files ran and passed, unless the code does something the reviewer was shown as HIGH risk.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
import signal
import zlib
from dataclasses import dataclass, field
from xml.etree import ElementTree

from evorag.tools.python_ast import parse_python

EDGE_CASE_FILE = "test_evorag_edge_cases.py"
RUNNER_FILE = "_evorag_gate_runner.py"
PLUGIN_FILE = "_evorag_gate_plugin.py"
MAX_FRAME_CHARS = 3_000_000
MAX_JUNIT_CHARS = 2_000_000
MAX_RESULT_JSON_BYTES = 8_000_000

# What a candidate's test may ask pytest for. Everything else pytest offers (request, pytestconfig,
# monkeypatch, record_xml_attribute, capsys.request ...) reaches the runner itself, from where a failing test
# can be reported as passed.
ALLOWED_FIXTURES = frozenset({"tmp_path"})
ALLOWED_PYTEST_ATTRIBUTES = frozenset({"raises", "approx", "param", "fixture", "warns", "fail", "mark"})
ALLOWED_MARKS = frozenset({"parametrize"})
# The test runner and its plugin system: a test file that imports them is tampering with its own verdict.
RUNNER_MODULES = frozenset({"_pytest", "pluggy", "py", "pytest_asyncio", "xdist"})


# Signals that end a sandboxed pytest at a limit (the runner sees the child's exit status as -signal).
_LIMIT_SIGNALS = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file", signal.SIGKILL: "SIGKILL (a limit, or the code itself)"}


@dataclass(frozen=True, slots=True)
class ExpectedTest:
    """A test the result must show as passed: JUnit ``classname`` + function name, at least ``count`` cases
    (the product of literal ``parametrize`` lists; 1 when the host cannot count them)."""

    classname: str
    function: str
    count: int = 1
    exact: bool = False  # the generated edge cases: exactly ``count`` cases, no more

    def describe(self) -> str:
        module, _, cls = self.classname.partition(".")
        return f"{module}.py::" + (f"{cls}::" if cls else "") + self.function


@dataclass(slots=True)
class RunVerdict:
    ok: bool
    reason: str | None
    passed: int = 0
    details: dict = field(default_factory=dict)


# Static part: what the host reads in the test files


def expected_tests(filename: str, source: str) -> list[ExpectedTest]:
    """The test functions pytest collects from ``source`` by default (``test*`` functions, ``Test*`` classes
    without ``__init__``), read from the AST. Raises SyntaxError/ValueError for source that does not parse."""
    module = filename.removesuffix(".py")
    tree = parse_python(source, filename=filename)
    expected = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            expected.append(ExpectedTest(module, node.name, _case_count(node)))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            if any(m.name == "__init__" for m in methods):
                continue  # pytest does not collect it either; check_test_files refuses it
            for method in methods:
                if method.name.startswith("test"):
                    expected.append(ExpectedTest(f"{module}.{node.name}", method.name, _case_count(method)))
    return list({(e.classname, e.function): e for e in expected}.values())  # a redefinition replaces


def _case_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    count = 1
    for decorator in function.decorator_list:
        values = _parametrize_values(decorator)
        if isinstance(values, (ast.List, ast.Tuple)) and not any(isinstance(v, ast.Starred) for v in values.elts):
            count *= len(values.elts)
    return max(count, 1) if count else 1  # an empty list: pytest reports one skipped case (refused later)


def _parametrize_values(decorator: ast.AST) -> ast.AST | None:
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "parametrize"):
        return None
    if len(decorator.args) >= 2:
        return decorator.args[1]
    return next((k.value for k in decorator.keywords if k.arg == "argvalues"), None)


def check_test_files(files: dict[str, str]) -> str | None:
    """The first reason to refuse the candidate's test files before running them, else None.

    Refused: a reserved file name, a file that does not parse or defines no test, a ``Test*`` class pytest
    would skip (``__init__``), hooks or ``pytest_plugins`` (they only belong in conftest.py, which candidates
    cannot ship), imports of the runner's internals, ``pytest`` attributes outside ``ALLOWED_PYTEST_ATTRIBUTES``
    (or ``pytest`` used as a value), fixtures outside ``ALLOWED_FIXTURES`` and the file's own fixtures.
    """
    for name, source in sorted(files.items()):
        if name == EDGE_CASE_FILE:
            return f"{name} is reserved for the edge cases evorag generates; rename the test file"
        try:
            tree = parse_python(source, filename=name)
            tests = expected_tests(name, source)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return f"{name} cannot be read: {type(exc).__name__}: {exc}"[:300]
        if not tests:
            return f"{name} defines no test functions (test_* functions or Test* classes): it would test nothing"
        problem = _runner_access(name, tree)
        if problem:
            return problem
    return None


def _runner_access(name: str, tree: ast.Module) -> str | None:
    pytest_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if alias.name == "pytest":
                    pytest_names.add(alias.asname or "pytest")
                elif root == "pytest" or root in RUNNER_MODULES:
                    return f"{name} line {node.lineno}: imports {alias.name}, the test runner's internals"
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if node.level == 0 and node.module == "pytest":
                for alias in node.names:
                    if alias.name not in ALLOWED_PYTEST_ATTRIBUTES - {"mark"}:
                        return (f"{name} line {node.lineno}: imports pytest.{alias.name}; tests may use "
                                f"pytest.{', pytest.'.join(sorted(ALLOWED_PYTEST_ATTRIBUTES))}")
            elif node.level == 0 and (root == "pytest" or root in RUNNER_MODULES):
                return f"{name} line {node.lineno}: imports from {node.module}, the test runner's internals"
    for node in tree.body:
        targets = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                targets += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
        for target in targets:
            if target.startswith("pytest_"):
                return f"{name} line {node.lineno}: defines {target}; test files may not hook into pytest"
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test") and any(
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__" for n in node.body
        ):
            return f"{name} line {node.lineno}: class {node.name} has __init__, so pytest would not run its tests"
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in pytest_names and not isinstance(node.ctx, ast.Store):
            parent = parents.get(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                return f"{name} line {node.lineno}: uses pytest as a value; tests may only call its helpers"
            if parent.attr not in ALLOWED_PYTEST_ATTRIBUTES:
                return (f"{name} line {node.lineno}: uses pytest.{parent.attr}; tests may use "
                        f"pytest.{', pytest.'.join(sorted(ALLOWED_PYTEST_ATTRIBUTES))}")
            if parent.attr == "mark":
                grand = parents.get(parent)
                mark = grand.attr if isinstance(grand, ast.Attribute) and grand.value is parent else None
                if mark not in ALLOWED_MARKS:
                    return f"{name} line {node.lineno}: uses pytest.mark.{mark}; tests may only parametrize"
    return _fixture_problem(name, tree)


def _fixture_problem(name: str, tree: ast.Module) -> str | None:
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    own_fixtures = {f.name for f in functions if any(_is_fixture(d) for d in f.decorator_list)}
    allowed = (ALLOWED_FIXTURES | own_fixtures) - {"request"}
    for function in functions:
        collected = function.name.startswith("test") or function.name in own_fixtures
        if not collected:
            continue
        parametrized = set()
        for decorator in function.decorator_list:
            if _parametrize_values(decorator) is not None and decorator.args:
                names = decorator.args[0]
                if isinstance(names, ast.Constant) and isinstance(names.value, str):
                    parametrized |= {n.strip() for n in names.value.split(",")}
                elif isinstance(names, (ast.List, ast.Tuple)):
                    parametrized |= {e.value for e in names.elts if isinstance(e, ast.Constant)}
        arguments = function.args
        params = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        for param in params:
            if param not in allowed and (param not in parametrized or param == "request"):
                return (f"{name} line {function.lineno}: {function.name} asks for the fixture {param!r}, which "
                        f"reaches the test runner; tests may use {', '.join(sorted(ALLOWED_FIXTURES))} and "
                        "fixtures defined in the same file")
    return None


def _is_fixture(decorator: ast.AST) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "fixture") or (
        isinstance(target, ast.Name) and target.id == "fixture")


# Dynamic part: what the runner reported


def extract_frame(stdout: str, nonce: str) -> tuple[dict | None, str, str | None]:
    """(results, output without the frame, problem). Exactly one frame keyed by ``nonce`` must be present."""
    begin, end = f"{nonce}-BEGIN\n", f"\n{nonce}-END"
    if stdout.count(begin) != 1 or stdout.count(end) != 1:
        found = stdout.count(begin)
        return None, stdout, ("the test runner left no result (the run ended early or its output was cut)"
                              if found == 0 else "the test runner's result appeared more than once")
    start = stdout.index(begin)
    stop = stdout.index(end)
    body = stdout[start + len(begin):stop]
    output = stdout[:start] + stdout[stop + len(end):]
    if stop < start or len(body) > MAX_FRAME_CHARS:
        return None, output, "the test runner's result is malformed"
    try:
        raw = zlib.decompressobj().decompress(base64.b64decode(body, validate=True), MAX_RESULT_JSON_BYTES)
        results = json.loads(raw)
    except (ValueError, RecursionError, binascii.Error, zlib.error):
        return None, output, "the test runner's result is malformed"
    if not isinstance(results, dict) or not isinstance(results.get("runs"), list):
        return None, output, "the test runner's result is malformed"
    return results, output, None


def parse_junit(text: str) -> list[tuple[str, str, str, str]]:
    """(classname, name, outcome, message) per testcase; outcome is passed|failure|error|skipped.
    Raises ValueError for anything that is not a plain, bounded JUnit document."""
    if len(text) > MAX_JUNIT_CHARS:
        raise ValueError("the JUnit result is too large")
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise ValueError("the JUnit result declares a DTD")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ValueError(f"the JUnit result does not parse: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"the JUnit result has an unexpected root <{root.tag[:40]}>")
    cases = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = child.tag, child.get("message") or ""
                # A collection error says only "collection failure"; its text ends with the exception ("E   ...").
                errors = [line.strip() for line in (child.text or "").splitlines() if line.startswith("E ")]
                if errors and (not message or message == "collection failure"):
                    message = f"{message}: {errors[-1].removeprefix('E').strip()}" if message else errors[-1]
                break
        cases.append((case.get("classname") or "", case.get("name") or "", outcome, message))
    return cases


def judge_run(run: dict | None, expected: list[ExpectedTest], label: str) -> RunVerdict:
    """Pass only when the run's JUnit XML shows every expected test passed, none failed, none skipped."""
    if not isinstance(run, dict):
        return RunVerdict(False, f"{label}: no result from the test runner")
    exit_code = run.get("exit_code")
    if run.get("junit_too_large"):
        return RunVerdict(False, f"{label}: the JUnit result is too large")
    if run.get("finished") is not True:
        if isinstance(exit_code, int) and -exit_code in _LIMIT_SIGNALS:
            return RunVerdict(False, f"killed in the sandbox: {_LIMIT_SIGNALS[-exit_code]} ({label})")
        return RunVerdict(False, f"{label}: pytest did not reach its normal end (exit code {exit_code}): "
                                 "a test or an import ended the process early")
    junit = run.get("junit")
    if not isinstance(junit, str):
        return RunVerdict(False, f"{label}: pytest wrote no result (exit code {exit_code})")
    try:
        cases = parse_junit(junit)
    except ValueError as exc:
        return RunVerdict(False, f"{label}: {exc}")
    for classname, name, outcome, message in cases:
        module, _, cls = classname.partition(".")
        # A collection error has no classname: its name is the module's.
        where = f"{module}.py::" + (f"{cls}::" if cls else "") + name if module else f"{name}.py"
        first_line = (message.strip().splitlines() or [""])[0][:240]
        if outcome in ("failure", "error"):
            return RunVerdict(False, f"FAILED {where} - {first_line}".strip(" -"), details={"cases": len(cases)})
        if outcome == "skipped":
            return RunVerdict(False, f"SKIPPED {where} - tests must run, not skip ({first_line})",
                              details={"cases": len(cases)})
    passed = [(c, n.split("[", 1)[0]) for c, n, outcome, _ in cases if outcome == "passed"]
    for test in expected:
        ran = sum(1 for c, n in passed if (c, n) == (test.classname, test.function))
        if ran < test.count or (test.exact and ran != test.count):
            return RunVerdict(False, f"{label}: {test.describe()} did not run ({ran} of {test.count} cases passed)",
                              passed=len(passed))
    if exit_code != 0:
        return RunVerdict(False, f"{label}: pytest exited with status {exit_code}", passed=len(passed))
    return RunVerdict(True, None, passed=len(passed))
