"""Code quality of the fenced code blocks in an answer.

Per block:

* Python (``python``, ``py``, ``python3``, ``pycon``, or an unlabelled block that parses as real Python):
  a syntax error scores 0; otherwise each pyflakes finding (undefined name, unused import, redefinition,
  ...) costs ``finding_cost`` down to a floor of ``python_floor`` -- code that parses is never worthless.
  Names defined by earlier Python blocks of the same answer count as defined, because answers split one
  program over several blocks. Interactive sessions (``>>>`` prompts) are reduced to their input lines.
* JSON must parse (``json.loads``), TOML must parse (``tomllib``): 1.0 or 0.0.
* Anything else: brackets must balance outside of string literals (1.0, else ``unbalanced_score``).
  This is a smoke test, not a linter: it is neutral for correct shell, YAML, JavaScript...

The answer's score is the mean over blocks, 1.0 when the answer has no code. Empty blocks are skipped.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from evorag.tools.evaluation._text import CodeBlock
from evorag.tools.python_ast import parse_python

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon", "ipython", "py3"})
_BRACKETS = {")": "(", "]": "[", "}": "{"}


@dataclass(slots=True)
class CodeQualityConfig:
    finding_cost: float = 0.1
    python_floor: float = 0.3
    unbalanced_score: float = 0.5


@dataclass(slots=True)
class CodeBlockReport:
    index: int
    language: str  # as detected: "python", "json", "toml" or the fence's label ("" when none)
    score: float
    findings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class CodeQualityResult:
    score: float
    blocks: list[CodeBlockReport]

    def to_dict(self) -> dict:
        return {"score": self.score, "blocks": [b.to_dict() for b in self.blocks]}


def _session_input(code: str) -> str:
    """The input lines of an interactive session (``>>>``/``...`` prompts stripped), else the code."""
    lines = code.splitlines()
    if not any(line.lstrip().startswith(">>>") for line in lines):
        return code
    kept = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith((">>>", "...")):
            kept.append(stripped[4:] if len(stripped) > 3 and stripped[3] == " " else stripped[3:])
    return "\n".join(kept)


def _looks_like_python(tree: ast.Module) -> bool:
    """An unlabelled block that parses is Python only if it has a statement or a call: ``pip``,
    ``hello world`` or ``ls -la`` parse as bare expressions but are not programs."""
    return any(not isinstance(node, ast.Expr) or isinstance(node.value, ast.Call) for node in tree.body)


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _pyflakes_findings(tree: ast.Module, known: set[str]) -> list[str]:
    from pyflakes import checker

    result = checker.Checker(tree, filename="<answer>", builtins=known | set(dir(builtins)))
    messages = sorted(result.messages, key=lambda m: (m.lineno, m.col))
    return [f"line {m.lineno}: {m.message % m.message_args}" for m in messages]


def _balanced(code: str) -> str:
    """'' when brackets balance outside string literals, else what is wrong."""
    stack: list[tuple[str, int]] = []
    text = re.sub(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`[^`\n]*`", '""', code)
    for line_number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            if char in "([{":
                stack.append((char, line_number))
            elif char in _BRACKETS:
                if not stack or stack[-1][0] != _BRACKETS[char]:
                    return f"line {line_number}: unmatched '{char}'"
                stack.pop()
    if stack:
        char, line_number = stack[-1]
        return f"line {line_number}: '{char}' is never closed"
    return ""


def code_quality(blocks: Sequence[CodeBlock], config: CodeQualityConfig | None = None) -> CodeQualityResult:
    """Score each non-empty block (see the module docstring); 1.0 overall when there is none."""
    config = config or CodeQualityConfig()
    reports: list[CodeBlockReport] = []
    known: set[str] = set()
    for index, block in enumerate(blocks):
        if not block.code.strip():
            continue
        language = block.language
        if language in PYTHON_LANGUAGES or language == "":
            source = _session_input(block.code)
            try:
                tree = parse_python(source)
            except SyntaxError as exc:
                if language:
                    reports.append(
                        CodeBlockReport(index, "python", 0.0, [f"line {exc.lineno}: syntax error: {exc.msg}"])
                    )
                    continue
                tree = None  # unlabelled and not Python: fall through to the generic check
            if tree is not None and (language or _looks_like_python(tree)):
                findings = _pyflakes_findings(tree, known)
                known |= _defined_names(tree)
                score = max(config.python_floor, 1.0 - config.finding_cost * len(findings))
                reports.append(CodeBlockReport(index, "python", round(score, 4), findings))
                continue
        if language == "json":
            try:
                json.loads(block.code)
                reports.append(CodeBlockReport(index, language, 1.0))
            except json.JSONDecodeError as exc:
                reports.append(
                    CodeBlockReport(index, language, 0.0, [f"line {exc.lineno}: invalid JSON: {exc.msg}"])
                )
            continue
        if language == "toml":
            try:
                tomllib.loads(block.code)
                reports.append(CodeBlockReport(index, language, 1.0))
            except tomllib.TOMLDecodeError as exc:
                reports.append(CodeBlockReport(index, language, 0.0, [f"invalid TOML: {exc}"]))
            continue
        problem = _balanced(block.code)
        reports.append(
            CodeBlockReport(
                index, language, config.unbalanced_score if problem else 1.0, [problem] if problem else []
            )
        )
    score = sum(r.score for r in reports) / len(reports) if reports else 1.0
    return CodeQualityResult(score=round(score, 4), blocks=reports)
