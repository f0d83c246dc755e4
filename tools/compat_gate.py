"""The compatibility gate of a redeploy, and which of the previous version's tests still apply to the new code.

A candidate named like a deployed tool is compared with it (``evorag.tools.tool_compat``), both interfaces read
from the AST of their tool.py: a breaking change gets the next major version, HIGH risk (a person approves it),
a migration guide, and the folder ``NAME_vMAJOR`` the deployed version moves to so that callers that pinned it
keep working until a person retires it. Before such a deploy the previous version's tests run against the new
code: those that still apply must pass. A test file applies when every call of the tool in it is a valid call of
the new signature (its keywords exist, every new required parameter is given, positional arguments still mean
the same parameters) and the return type did not change (the old tests check the old results).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from evorag.tools.code_checks import check_candidate
from evorag.tools.plugins._manifest import MANIFEST, ToolManifest
from evorag.tools.plugins._registry import pinned_name
from evorag.tools.python_ast import parse_python
from evorag.tools.tool_compat import (
    INITIAL_VERSION,
    ToolInterface,
    compare,
    major_of,
    migration_guide,
    next_version,
)

MAX_TOOL_NAME = 64  # as evorag.tools.plugins.check_tool_name allows


@dataclass(slots=True)
class CompatibilityCheck:
    ok: bool
    reason: str | None
    risk: str
    details: dict = field(default_factory=dict)


def interface_of(signature) -> ToolInterface:
    """The interface of a ``code_checks.ToolSignature``."""
    return ToolInterface(signature.json_schema, signature.return_schema, signature.returns)


def deployed_interface(tool_dir: Path) -> ToolInterface | None:
    """The interface of a deployed tool read from its tool.py (None when it does not read as a tool)."""
    try:
        source = (tool_dir / "tool.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    result = check_candidate({"tool.py": source})
    return interface_of(result.function) if result.function is not None else None


def check_compatibility(tools_dir: Path, signature) -> CompatibilityCheck:
    """The verdict on deploying ``signature`` (the candidate's function) over the tools in ``tools_dir``."""
    name = signature.name
    folder = tools_dir / name
    base = {"returns": signature.returns, "return_schema": signature.return_schema}
    if not (folder / MANIFEST).is_file():
        return CompatibilityCheck(True, None, "LOW", {**base, "level": "new", "semver": INITIAL_VERSION,
                                                      "changes": []})
    previous = ToolManifest.load(folder / MANIFEST)
    if previous.pinned_of:
        return CompatibilityCheck(False, f"{name} is the previous major version of {previous.pinned_of}, kept for "
                                  "callers that pinned it", "LOW", {**base, "level": "refused"})
    old = deployed_interface(folder)
    if old is None:
        old = ToolInterface(previous.parameters_schema, previous.return_schema, previous.returns)
    verdict = compare(old, interface_of(signature))
    before = previous.semantic_version()
    semver = next_version(before, verdict.level)
    details = {**base, **verdict.to_dict(), "previous": before, "semver": semver}
    if not verdict.breaking:
        reason = f"{verdict.level} change: {before} -> {semver}" + (
            f" ({'; '.join(verdict.reasons())})" if verdict.changes else "")
        return CompatibilityCheck(True, reason[:600], "LOW", details)
    pinned = pinned_name(name, major_of(before))
    if len(pinned) > MAX_TOOL_NAME:
        return CompatibilityCheck(False, f"breaking change to {name}, but its previous major version cannot be kept: "
                                  f"{pinned} is longer than {MAX_TOOL_NAME} characters", "HIGH",
                                  {**details, "level": "refused"})
    if (tools_dir / pinned / MANIFEST).is_file():
        return CompatibilityCheck(False, f"breaking change to {name}, but {pinned} is already deployed: the previous "
                                  f"major version cannot be kept under that name", "HIGH",
                                  {**details, "level": "refused"})
    details["pinned"] = pinned
    details["migration"] = migration_guide(name, before, semver, old, interface_of(signature), verdict,
                                           pinned_name=pinned)
    reason = (f"breaking change: {before} -> {semver} ({'; '.join(verdict.reasons('breaking'))}); a person must "
              f"approve it; {before} stays callable as {name}@{major_of(before)} ({pinned}) until retired")
    return CompatibilityCheck(True, reason[:800], "HIGH", details)


def applicable_previous_tests(previous_dir: Path, candidate_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The previous version's test files that still apply to the candidate (name -> text), and why each other
    one does not (one line each)."""
    tests = {path.name: path.read_text(encoding="utf-8") for path in sorted(previous_dir.glob("test_*.py"))}
    if not tests:
        return {}, []
    old, new = deployed_interface(previous_dir), deployed_interface(candidate_dir)
    if old is None or new is None:
        return {}, [f"{name}: the interfaces could not be compared" for name in tests]
    result = check_candidate({"tool.py": (candidate_dir / "tool.py").read_text(encoding="utf-8")})
    function = result.function.name if result.function else ""
    if compare(ToolInterface({}, old.returns, old.return_annotation),
               ToolInterface({}, new.returns, new.return_annotation)).breaking:
        return {}, [f"{name}: the return type changed, so its checks of the previous results do not apply"
                    for name in tests]
    applicable: dict[str, str] = {}
    skipped: list[str] = []
    for name, text in tests.items():
        problem = _inapplicable_call(text, function, old, new)
        if problem:
            skipped.append(f"{name}: {problem}")
        else:
            applicable[name] = text
    return applicable, skipped


def _inapplicable_call(text: str, function: str, old: ToolInterface, new: ToolInterface) -> str | None:
    """Why a test module's calls of ``function`` are not valid calls of the new signature (None: they are)."""
    try:
        tree = parse_python(text)
    except SyntaxError:
        return "it does not parse"
    old_order, new_order = list(old.properties), list(new.properties)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.id if isinstance(node.func, ast.Name) else (
            node.func.attr if isinstance(node.func, ast.Attribute) else None)
        if callee != function:
            continue
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(kw.arg is None for kw in node.keywords):
            return f"line {node.lineno} passes *args/**kwargs: its arguments cannot be checked"
        positional = len(node.args)
        if old_order[:positional] != new_order[:positional]:
            return f"line {node.lineno} passes positional arguments whose parameters moved or changed"
        given = set(new_order[:positional]) | {kw.arg for kw in node.keywords}
        unknown = sorted(arg for arg in given if arg not in new.properties)
        if unknown:
            return f"line {node.lineno} passes {', '.join(unknown)}, which the new version does not take"
        missing = sorted(param for param in new.required if param not in given)
        if missing:
            return f"line {node.lineno} does not pass the new required {', '.join(missing)}"
    return None
