"""The code gate of self-evolution: is a candidate a well-formed MCP tool, and how risky is it?

Everything here reads the source as an AST; nothing from the tool is ever imported or executed on the host.

A tool module must define exactly one public top-level function (name not starting with ``_``; private
helpers and private classes are allowed). That function becomes the MCP tool: its snake_case name is the
tool name, its docstring the description, and its annotations the JSON schema of the arguments. It must
annotate every parameter and the return, take no ``*args``/``**kwargs`` or positional-only parameters, carry
no decorators (they could change the signature we read), and use only annotations that map to JSON schema:
``str int float bool None Any list[...] Sequence[...] tuple[...] dict[str, ...] Optional[...] X | Y Union[...]
Literal[...] Annotated[...]`` (string annotations are read too).

pyflakes lints the module: undefined names (and other certain errors) block, the rest are warnings. A file
that declares a source encoding other than UTF-8 blocks too: Python would run different code from the text
analysed and reviewed (``# coding: utf-7`` hides statements in what reads as a comment).

The risk of a candidate is the maximum over all its Python files, ``tool.py`` and every ``test_*.py`` (they run
in the sandbox and are committed with the tool), as rated by ``evorag.tools.risk_scan`` under the rules of
``tools/risk_rules.py`` (LOW only for provably pure code). Risk findings never block (``ok`` stays True): they
decide who must approve. Each reason names ``file:line``.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from evorag.tools.name_resolver import NameResolver
from evorag.tools.python_ast import parse_python
from evorag.tools.risk_rules import RISK_ORDER, Risk, max_risk
from evorag.tools.risk_scan import Finding, scan_candidate, scan_security
from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

__all__ = [
    "RISK_ORDER", "CodeCheckResult", "Finding", "Risk", "ToolSignature", "check_candidate", "check_code",
    "max_risk", "scan_security",
]

MAX_SOURCE_CHARS = 200_000
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# PEP 263: a coding declaration on one of the first two lines.
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)
_UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"})

# pyflakes messages that mean the code is wrong, not merely untidy.
_BLOCKING_LINT = (
    pyflakes_messages.UndefinedName,
    pyflakes_messages.UndefinedLocal,
    pyflakes_messages.UndefinedExport,
    pyflakes_messages.DuplicateArgument,
    pyflakes_messages.ReturnOutsideFunction,
    pyflakes_messages.YieldOutsideFunction,
    pyflakes_messages.ContinueOutsideLoop,
    pyflakes_messages.BreakOutsideLoop,
    pyflakes_messages.DefaultExceptNotLast,
    pyflakes_messages.TwoStarredExpressions,
    pyflakes_messages.TooManyExpressionsInStarredAssignment,
    pyflakes_messages.ForwardAnnotationSyntaxError,
    pyflakes_messages.FutureFeatureNotDefined,
    pyflakes_messages.LateFutureImport,
    pyflakes_messages.ImportStarNotPermitted,
)


@dataclass(slots=True)
class ToolSignature:
    """The MCP tool a module defines, read from its AST."""

    name: str
    docstring: str
    parameters: list[dict[str, Any]]
    returns: str
    json_schema: dict[str, Any]
    is_async: bool = False
    line: int = 0
    # The return annotation as JSON schema ({} when it is Any or a type the schema cannot express): compared on
    # redeploy (evorag.tools.tool_compat) and served in the OpenAPI document.
    return_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CodeCheckResult:
    """Verdict of the code gate. ``reason`` is the first blocking problem, ``problems`` all of them."""

    ok: bool
    reason: str | None
    function: ToolSignature | None
    lint: list[Finding]
    security: list[Finding]
    risk: Risk
    risk_reasons: list[str]
    problems: list[str] = field(default_factory=list)
    gate: Literal["code"] = "code"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def refused(cls, reason: str) -> CodeCheckResult:
        """A verdict for a candidate that could not be checked at all (``reason`` says why)."""
        return cls(ok=False, reason=reason, function=None, lint=[], security=[], risk="LOW", risk_reasons=[],
                   problems=[reason])


def check_code(source: str, *, filename: str = "tool.py") -> CodeCheckResult:
    """Check one tool module's source. Never raises for bad input: every problem ends up in the result."""
    return check_candidate({filename: source}, tool=filename)


def check_candidate(files: Mapping[str, str], *, tool: str = "tool.py") -> CodeCheckResult:
    """Check a candidate's files (name -> text): ``tool`` must be a well-formed tool module; every Python file
    (the tool and its test files) is rated, and the risk is the highest. Never raises for bad input."""
    source = files.get(tool)
    if source is None:
        return CodeCheckResult.refused(f"the candidate has no {tool}")
    problems: list[str] = []
    for name, text in sorted(files.items()):
        if name.endswith(".py"):
            problems += _encoding_problems(name, text)
    if len(source) > MAX_SOURCE_CHARS:
        return CodeCheckResult.refused(f"{tool} is too large ({len(source)} characters, at most {MAX_SOURCE_CHARS})")
    try:
        tree = parse_python(source, filename=tool)
    except SyntaxError as exc:
        if exc.lineno is None:
            return CodeCheckResult.refused(f"syntax error in {tool}: {exc.msg}")
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        return CodeCheckResult.refused(f"syntax error in {tool} at {where}: {exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return CodeCheckResult.refused(f"cannot parse {tool}: {type(exc).__name__}: {exc}")

    try:
        names = NameResolver(tree, candidate_modules=frozenset({tool.removesuffix(".py")}))
        function, signature_problems = _read_signature(tree, names)
        lint = _lint(tree, tool)
        security = _rate_files(files, tool)
    except RecursionError:
        return CodeCheckResult.refused(f"{tool} is nested too deeply to analyse")
    problems += signature_problems
    problems += [
        f"star import from {node.module} (line {node.lineno}): import the names the tool uses explicitly"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)
    ]
    problems += [f"{finding.message} (line {finding.line})" for finding in lint if finding.blocking]

    risky = [finding for finding in security if finding.risk != "LOW"]
    risk = max_risk(*(finding.risk for finding in risky))
    risk_reasons = list(dict.fromkeys(finding.describe() for finding in risky))
    return CodeCheckResult(
        ok=not problems,
        reason=problems[0] if problems else None,
        function=function if not signature_problems else None,
        lint=lint,
        security=security,
        risk=risk,
        risk_reasons=risk_reasons,
        problems=problems,
    )


def _rate_files(files: Mapping[str, str], tool: str) -> list[Finding]:
    """Risk findings of every Python file; a test file the analyser cannot read is HIGH (nothing proves
    what it does, and it would run in the sandbox)."""
    readable: dict[str, str] = {}
    unreadable: list[Finding] = []
    for name, text in sorted(files.items()):
        if not name.endswith(".py"):
            continue
        try:
            if len(text) > MAX_SOURCE_CHARS:
                raise ValueError(f"larger than {MAX_SOURCE_CHARS} characters")
            parse_python(text, filename=name)
            readable[name] = text
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            line = getattr(exc, "lineno", None) or 1
            unreadable.append(Finding("unreadable", line, f"cannot be analysed ({type(exc).__name__}: {exc})"[:200],
                                      "HIGH", file=name))
    findings = scan_candidate(readable)
    order = {name: index for index, name in enumerate([tool, *sorted(n for n in files if n != tool)])}
    return sorted([*findings, *unreadable], key=lambda f: (order.get(f.file, len(order)), f.line, f.rule))


def _encoding_problems(name: str, text: str) -> list[str]:
    lines = text.splitlines()[:2]
    problems = []
    for match in _CODING.finditer("\n".join(lines)):
        declared = match.group(1).lower().replace("_", "-")
        if declared not in {n.replace("_", "-") for n in _UTF8_NAMES}:
            problems.append(f"{name} declares the source encoding {match.group(1)!r}: Python would decode it "
                            "differently from the text reviewed; save it as UTF-8 without a coding line")
    return problems


# ----------------------------------------------------------------------------------------------------------
# Lint


def _lint(tree: ast.Module, filename: str) -> list[Finding]:
    found = pyflakes_checker.Checker(tree, filename=filename, withDoctest=False)
    findings = []
    for message in sorted(found.messages, key=lambda m: (m.lineno, m.col)):
        blocking = isinstance(message, _BLOCKING_LINT)
        findings.append(
            Finding(
                rule=f"pyflakes:{type(message).__name__}",
                line=message.lineno,
                message=message.message % message.message_args,
                risk="LOW",
                blocking=blocking,
            )
        )
    return findings


_TYPING_MODULES = ("typing.", "typing_extensions.", "collections.abc.", "builtins.")


def _literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


# ----------------------------------------------------------------------------------------------------------
# The tool's signature and its JSON schema


class _UnsupportedAnnotation(Exception):
    pass


def _read_signature(tree: ast.Module, names: NameResolver) -> tuple[ToolSignature | None, list[str]]:
    problems: list[str] = []
    public_functions = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_")
    ]
    public_classes = [
        node for node in tree.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    ]
    for cls in public_classes:
        problems.append(
            f"public class {cls.name!r} (line {cls.lineno}): a tool module may define only one public "
            f"function; rename the class to _{cls.name}"
        )
    if not public_functions:
        problems.insert(0, "no public function: define exactly one top-level function not starting with '_'")
        return None, problems
    if len(public_functions) > 1:
        listed = ", ".join(f"{fn.name} (line {fn.lineno})" for fn in public_functions)
        problems.insert(
            0,
            f"{len(public_functions)} public functions ({listed}): exactly one is allowed; "
            "prefix helpers with '_'",
        )
        return None, problems

    fn = public_functions[0]
    where = f"function {fn.name!r} (line {fn.lineno})"
    if not TOOL_NAME.match(fn.name) or keyword.iskeyword(fn.name):
        problems.append(f"{where}: the tool name must be snake_case, 1-64 characters ([a-z][a-z0-9_]*)")
    if fn.decorator_list:
        problems.append(f"{where} is decorated: a tool function may not have decorators")
    docstring = (ast.get_docstring(fn) or "").strip()
    if not docstring:
        problems.append(f"{where} has no docstring: it becomes the tool's description")

    args = fn.args
    if args.vararg:
        problems.append(f"{where} takes *{args.vararg.arg}: tools take named parameters only")
    if args.kwarg:
        problems.append(f"{where} takes **{args.kwarg.arg}: tools take named parameters only")
    if args.posonlyargs:
        problems.append(f"{where} has positional-only parameters: tools are called with named arguments")

    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    all_params = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))

    parameters: list[dict[str, Any]] = []
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param, default_node in all_params:
        if param.annotation is None:
            problems.append(f"parameter {param.arg!r} of {where} has no type annotation")
            continue
        annotation = ast.unparse(param.annotation)
        try:
            schema = _annotation_schema(param.annotation, names)
        except _UnsupportedAnnotation as exc:
            problems.append(
                f"parameter {param.arg!r} of {where} has an unsupported type annotation {annotation!r}: {exc}"
            )
            continue
        entry: dict[str, Any] = {
            "name": param.arg,
            "annotation": annotation,
            "default": None,
            "required": default_node is None,
        }
        if default_node is not None:
            try:
                value = ast.literal_eval(default_node)
                json.dumps(value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                problems.append(
                    f"default of parameter {param.arg!r} of {where} must be a JSON literal, "
                    f"not {ast.unparse(default_node)!r}"
                )
                continue
            entry["default"] = repr(value)
            schema = {**schema, "default": json.loads(json.dumps(value))}
        else:
            required.append(param.arg)
        parameters.append(entry)
        properties[param.arg] = schema
    if fn.returns is None:
        problems.append(f"{where} has no return annotation")
    if problems:
        return None, problems

    json_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        json_schema["required"] = required
    return (
        ToolSignature(
            name=fn.name,
            docstring=docstring,
            parameters=parameters,
            returns=ast.unparse(fn.returns) if fn.returns is not None else "",
            json_schema=json_schema,
            is_async=isinstance(fn, ast.AsyncFunctionDef),
            line=fn.lineno,
            return_schema=_return_schema(fn.returns, names),
        ),
        problems,
    )


def _return_schema(node: ast.AST | None, names: NameResolver) -> dict[str, Any]:
    try:
        return _annotation_schema(node, names) if node is not None else {}
    except _UnsupportedAnnotation:
        return {}


_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "None": "null"}
_ARRAYS = frozenset({"list", "List", "Sequence", "MutableSequence"})
_OBJECTS = frozenset({"dict", "Dict", "Mapping", "MutableMapping"})
_SUPPORTED_HINT = (
    "use str, int, float, bool, list[...], dict[str, ...], Literal[...], Optional[...] or X | None"
)


def _canonical(node: ast.AST, names: NameResolver) -> str | None:
    """``typing.Optional``/``t.Optional``/``Optional`` -> ``"Optional"``; builtins stay bare."""
    if isinstance(node, ast.Name):
        paths = names.aliases.get(node.id, set())
        resolved = next(iter(paths)) if len(paths) == 1 else node.id
    elif isinstance(node, ast.Attribute):
        resolved = names.resolve_one(node)
        if resolved is None:
            return None
    else:
        return None
    for prefix in _TYPING_MODULES:
        if resolved.startswith(prefix):
            return resolved[len(prefix) :]
    return resolved


def _annotation_schema(node: ast.AST, names: NameResolver, depth: int = 0) -> dict[str, Any]:
    if depth > 20:
        raise _UnsupportedAnnotation("nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"type": "null"}
        if isinstance(node.value, str):  # a string annotation: read it as an expression
            try:
                inner = parse_python(node.value, mode="eval").body
            except SyntaxError:
                raise _UnsupportedAnnotation("the string annotation is not valid Python") from None
            return _annotation_schema(inner, names, depth + 1)
        raise _UnsupportedAnnotation("a constant is not a type")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], names, depth)
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _canonical(node, names)
        if name in _SCALARS:
            return {"type": _SCALARS[name]}
        if name == "Any":
            return {}
        if name in _ARRAYS:
            return {"type": "array"}
        if name in _OBJECTS:
            return {"type": "object"}
        raise _UnsupportedAnnotation(_SUPPORTED_HINT)
    if isinstance(node, ast.Subscript):
        origin = _canonical(node.value, names)
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if origin in _ARRAYS and len(args) == 1:
            return {"type": "array", "items": _annotation_schema(args[0], names, depth + 1)}
        if origin == "tuple":
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return {"type": "array", "items": _annotation_schema(args[0], names, depth + 1)}
            items = [_annotation_schema(arg, names, depth + 1) for arg in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        if origin in _OBJECTS and len(args) == 2:
            if _canonical(args[0], names) != "str":
                raise _UnsupportedAnnotation("dictionary keys must be str (JSON object keys are strings)")
            return {"type": "object", "additionalProperties": _annotation_schema(args[1], names, depth + 1)}
        if origin == "Optional" and len(args) == 1:
            return _union([args[0], ast.Constant(value=None)], names, depth)
        if origin == "Union":
            return _union(args, names, depth)
        if origin == "Literal":
            return _literal_schema(args)
        if origin == "Annotated" and args:
            schema = _annotation_schema(args[0], names, depth + 1)
            descriptions = [meta.value for meta in args[1:] if _literal_str(meta)]
            return {**schema, "description": descriptions[0]} if descriptions else schema
        raise _UnsupportedAnnotation(_SUPPORTED_HINT)
    raise _UnsupportedAnnotation(_SUPPORTED_HINT)


def _union(members: list[ast.AST], names: NameResolver, depth: int) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for member in members:
        schema = _annotation_schema(member, names, depth + 1)
        flat.extend(schema["anyOf"] if set(schema) == {"anyOf"} else [schema])
    unique = [json.loads(s) for s in dict.fromkeys(json.dumps(s, sort_keys=True) for s in flat)]
    if any(schema == {} for schema in unique):
        return {}
    if all(set(schema) == {"type"} and isinstance(schema["type"], str) for schema in unique):
        return {"type": [schema["type"] for schema in unique]}
    return {"anyOf": unique}


def _literal_schema(args: list[ast.AST]) -> dict[str, Any]:
    values = []
    for arg in args:
        try:
            value = ast.literal_eval(arg)
        except (ValueError, SyntaxError):
            raise _UnsupportedAnnotation("Literal values must be constants") from None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise _UnsupportedAnnotation("Literal values must be str, int, float, bool or None")
        values.append(value)
    types = {type(value) for value in values}
    schema: dict[str, Any] = {"enum": values}
    if len(types) == 1:
        only = types.pop()
        schema["type"] = {str: "string", bool: "boolean", int: "integer", float: "number"}.get(only, "null")
    return schema


