"""The code gate of self-evolution: is a generated ``tool.py`` a well-formed MCP tool, and how risky is it?

Everything here reads the source as an AST; nothing from the tool is ever imported or executed on the host.

A tool module must define exactly one public top-level function (name not starting with ``_``; private
helpers and private classes are allowed). That function becomes the MCP tool: its snake_case name is the
tool name, its docstring the description, and its annotations the JSON schema of the arguments. It must
annotate every parameter and the return, take no ``*args``/``**kwargs`` or positional-only parameters, carry
no decorators (they could change the signature we read), and use only annotations that map to JSON schema:
``str int float bool None Any list[...] Sequence[...] tuple[...] dict[str, ...] Optional[...] X | Y Union[...]
Literal[...] Annotated[...]`` (string annotations are read too).

pyflakes lints the module: undefined names (and other certain errors) block, the rest are warnings.

The security scan resolves every name to a dotted path through the module's own imports and simple
assignments, so ``import subprocess as sp``, ``from os import system``, ``run = sp.run``,
``getattr(os, "system")``, ``__import__("os")`` and ``importlib.import_module("os")`` all resolve to what
they are. Findings never block (``ok`` stays True): they set ``risk``, which decides who must approve.
HIGH: dynamic code (eval/exec/compile/__import__/importlib), processes, network, environment variables,
native code (ctypes/cffi), pickle/marshal, introspection that escapes sandboxes, file writes or deletions
anywhere but in paths made by :mod:`tempfile`. MEDIUM: file reads, writes inside temporary directories,
threads. Otherwise LOW. The scan is a static approximation: it cannot see through every trick, which is
why the sandbox, not this scan, is what actually contains a tool.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

Risk = Literal["LOW", "MEDIUM", "HIGH"]
RISK_ORDER: dict[str, int] = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}

MAX_SOURCE_CHARS = 200_000
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

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


def _names(text: str) -> tuple[str, ...]:
    """Whitespace-separated names: keeps the long rule tables compact and readable."""
    return tuple(text.split())


def max_risk(*risks: str) -> Risk:
    """The highest of ``risks`` (LOW when none); an unknown value counts as HIGH."""
    if not risks:
        return "LOW"
    return max(risks, key=lambda risk: RISK_ORDER.get(risk, 2))  # type: ignore[return-value]


@dataclass(slots=True)
class Finding:
    """One lint or security observation. ``blocking`` findings make the gate fail."""

    rule: str
    line: int
    message: str
    risk: Risk = "LOW"
    blocking: bool = False

    def describe(self) -> str:
        return f"line {self.line}: {self.message}"

    def __str__(self) -> str:
        kind = "error" if self.blocking else self.risk
        return f"line {self.line}: {self.message} [{self.rule}, {kind}]"


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


def check_code(source: str, *, filename: str = "tool.py") -> CodeCheckResult:
    """Check one tool module's source. Never raises for bad input: every problem ends up in the result."""
    if len(source) > MAX_SOURCE_CHARS:
        return _failed(f"{filename} is too large ({len(source)} characters, at most {MAX_SOURCE_CHARS})")
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        if exc.lineno is None:
            return _failed(f"syntax error in {filename}: {exc.msg}")
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        return _failed(f"syntax error in {filename} at {where}: {exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return _failed(f"cannot parse {filename}: {type(exc).__name__}: {exc}")

    problems: list[str] = []
    try:
        names = _NameResolver(tree)
        function, signature_problems = _read_signature(tree, names)
        lint = _lint(tree, filename)
        security = scan_security(tree, names=names)
    except RecursionError:
        return _failed(f"{filename} is nested too deeply to analyse")
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


def _failed(reason: str) -> CodeCheckResult:
    return CodeCheckResult(
        ok=False,
        reason=reason,
        function=None,
        lint=[],
        security=[],
        risk="LOW",
        risk_reasons=[],
        problems=[reason],
    )


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


# ----------------------------------------------------------------------------------------------------------
# Name resolution shared by the signature reader and the security scan

# Builtins whose use matters to the scan; any other bare name is left unresolved.
_TRACKED_BUILTINS = frozenset(
    _names(
        "eval exec compile __import__ open getattr globals vars locals breakpoint __builtins__ setattr delattr"
    )
)
_TYPING_MODULES = ("typing.", "typing_extensions.", "collections.abc.", "builtins.")


class _NameResolver:
    """Maps local names to the dotted paths they stand for, from imports and simple assignments.

    Flow-insensitive on purpose: a name bound to ``subprocess.run`` anywhere in the module is treated as
    ``subprocess.run`` everywhere, which errs towards reporting.
    """

    def __init__(self, tree: ast.AST) -> None:
        self.aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        # Assignments may chain (a = os; b = a.system), so iterate to a fixed point.
        for _ in range(10):
            changed = False
            for target, value in _bindings(tree):
                if isinstance(target, ast.Name) and target.id not in self.aliases:
                    resolved = self.resolve(value)
                    if resolved:
                        self.aliases[target.id] = resolved
                        changed = True
            if not changed:
                break

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted path ``node`` stands for (``"subprocess.run"``), or None when unknown."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in _TRACKED_BUILTINS:
                return "builtins" if node.id == "__builtins__" else f"builtins.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base and node.attr == "__dict__":
                return base  # os.__dict__["system"] is os.system
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):
            # __builtins__["eval"], sys.modules["os"], vars(os)["system"]
            base = self.resolve(node.value)
            key = _literal_str(node.slice)
            if base and key:
                if base == "sys.modules":
                    return key
                if base in ("builtins", "builtins.globals()", "builtins.vars()"):
                    return f"builtins.{key}"
                return f"{base}.{key}"
            return None
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            first = node.args[0] if node.args else None
            if func == "builtins.getattr" and len(node.args) >= 2:
                base = self.resolve(node.args[0])
                attr = _literal_str(node.args[1])
                return f"{base}.{attr}" if base and attr else None
            if func == "builtins.__import__" and first is not None:
                name = _literal_str(first)
                return name.split(".")[0] if name else None
            if func == "importlib.import_module" and first is not None:
                return _literal_str(first)
            if func == "builtins.vars" and first is not None:
                return self.resolve(first)
            if func in ("builtins.globals", "builtins.vars"):
                return f"{func}()"
        return None


def _bindings(tree: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs of the assignments, walrus and with-items in ``tree``."""
    pairs: list[tuple[ast.AST, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, (ast.Tuple, ast.List)) and isinstance(
                    node.value, (ast.Tuple, ast.List)
                ):
                    pairs.extend(zip(target.elts, node.value.elts))
                else:
                    pairs.append((target, node.value))
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            pairs.append((node.target, node.value))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            pairs.extend((item.optional_vars, item.context_expr) for item in node.items if item.optional_vars)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            pairs.append((node.target, node.iter))
    return pairs


def _literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


# ----------------------------------------------------------------------------------------------------------
# The tool's signature and its JSON schema


class _UnsupportedAnnotation(Exception):
    pass


def _read_signature(tree: ast.Module, names: _NameResolver) -> tuple[ToolSignature | None, list[str]]:
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
        ),
        problems,
    )


_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "None": "null"}
_ARRAYS = frozenset({"list", "List", "Sequence", "MutableSequence"})
_OBJECTS = frozenset({"dict", "Dict", "Mapping", "MutableMapping"})
_SUPPORTED_HINT = (
    "use str, int, float, bool, list[...], dict[str, ...], Literal[...], Optional[...] or X | None"
)


def _canonical(node: ast.AST, names: _NameResolver) -> str | None:
    """``typing.Optional``/``t.Optional``/``Optional`` -> ``"Optional"``; builtins stay bare."""
    if isinstance(node, ast.Name):
        resolved = names.aliases.get(node.id, node.id)
    elif isinstance(node, ast.Attribute):
        resolved = names.resolve(node)
        if resolved is None:
            return None
    else:
        return None
    for prefix in _TYPING_MODULES:
        if resolved.startswith(prefix):
            return resolved[len(prefix) :]
    return resolved


def _annotation_schema(node: ast.AST, names: _NameResolver, depth: int = 0) -> dict[str, Any]:
    if depth > 20:
        raise _UnsupportedAnnotation("nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"type": "null"}
        if isinstance(node.value, str):  # a string annotation: read it as an expression
            try:
                inner = ast.parse(node.value, mode="eval").body
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


def _union(members: list[ast.AST], names: _NameResolver, depth: int) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------------------------
# Security scan


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: str
    risk: Risk
    what: str
    # Dotted prefixes: "os.environ" matches itself and "os.environ.get"; a trailing '*' matches any
    # continuation of the last part ("os.exec*"); a leading '=' matches the name exactly ("=builtins").
    patterns: tuple[str, ...]

    def matches(self, name: str) -> bool:
        for pattern in self.patterns:
            if pattern.startswith("="):
                if name == pattern[1:]:
                    return True
            elif pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern or name.startswith(pattern + "."):
                return True
        return False


_RULES: tuple[_Rule, ...] = (
    _Rule("dynamic-code", "HIGH", "runs dynamically built code", _names("""
        builtins.eval builtins.exec builtins.compile code.interact code.InteractiveInterpreter runpy
        types.FunctionType types.CodeType""")),
    _Rule("dynamic-import", "HIGH", "imports modules dynamically", _names("""
        builtins.__import__ importlib imp pkgutil zipimport""")),
    _Rule("process", "HIGH", "starts or controls processes", _names("""
        subprocess _posixsubprocess os.system os.popen os.exec* os.spawn* os.fork os.forkpty os.posix_spawn*
        os.kill os.killpg posix nt pty multiprocessing concurrent.futures.ProcessPoolExecutor
        asyncio.create_subprocess_exec asyncio.create_subprocess_shell signal pexpect sh plumbum""")),
    _Rule("network", "HIGH", "uses the network", _names("""
        socket _socket ssl urllib.request urllib3 http.client http.server requests httpx aiohttp ftplib
        smtplib poplib imaplib nntplib telnetlib xmlrpc socketserver asyncio.open_connection
        asyncio.start_server asyncio.open_unix_connection asyncio.start_unix_server websocket websockets
        paramiko grpc webbrowser dns pycurl""")),
    _Rule("environment", "HIGH", "reads or changes environment variables", _names("""
        os.environ os.environb os.getenv os.getenvb os.putenv os.unsetenv dotenv""")),
    _Rule("native-code", "HIGH", "loads native code", _names("ctypes _ctypes cffi mmap")),
    _Rule("deserialization", "HIGH", "deserializes objects unsafely", _names("""
        pickle _pickle cPickle marshal shelve dill cloudpickle jsonpickle""")),
    _Rule("introspection", "HIGH", "reaches interpreter internals", _names("""
        builtins.globals builtins.__builtins__ builtins.setattr builtins.delattr =builtins sys.modules
        sys._getframe sys.settrace sys.setprofile sys.addaudithook gc inspect.currentframe inspect.stack
        inspect.getouterframes""")),
    _Rule("threads", "MEDIUM", "starts threads", _names("""
        threading _thread concurrent.futures.ThreadPoolExecutor asyncio.to_thread""")),
    _Rule("file-read", "MEDIUM", "reads the file system", _names("""
        os.listdir os.scandir os.walk os.fwalk glob fnmatch.filter os.stat os.lstat os.readlink linecache
        fileinput""")),
)  # fmt: skip

# Attributes that lead from any object to the interpreter's internals (classic sandbox escapes).
_ESCAPE_ATTRIBUTES = frozenset(_names("""
    __subclasses__ __globals__ __builtins__ __code__ __closure__ __bases__ __base__ __mro__ __loader__
    __import__ __getattribute__ f_globals f_locals f_back gi_frame cr_frame tb_frame"""))  # fmt: skip

_TEMP_SOURCES = frozenset(_names("""
    tempfile.mkdtemp tempfile.mkstemp tempfile.TemporaryDirectory tempfile.NamedTemporaryFile
    tempfile.TemporaryFile tempfile.SpooledTemporaryFile"""))  # fmt: skip
# pytest's fixtures are temporary directories too (test files are scanned with the same rules).
_TEMP_PARAMETERS = frozenset(_names("tmp_path tmpdir tmp_path_factory tmpdir_factory"))

# Calls that open a file: (path argument index, mode argument index or None, default mode).
_OPENERS: dict[str, tuple[int, int | None, str]] = {
    "builtins.open": (0, 1, "r"),
    "io.open": (0, 1, "r"),
    "codecs.open": (0, 1, "r"),
    "io.FileIO": (0, 1, "r"),
    "os.open": (0, None, "?"),
}
# Module functions that change the file system, with the indexes of the path arguments they change.
_FS_WRITERS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(_names("""
        os.remove os.unlink os.rmdir os.removedirs os.makedirs os.mkdir os.chmod os.chown os.lchown
        os.truncate os.mkfifo os.mknod os.utime os.chroot os.chdir shutil.rmtree shutil.chown
        shutil.make_archive"""), (0,)),
    **dict.fromkeys(_names("""
        shutil.copy shutil.copy2 shutil.copyfile shutil.copytree shutil.copymode shutil.copystat os.symlink
        os.link"""), (1,)),
    **dict.fromkeys(_names("os.rename os.renames os.replace shutil.move"), (0, 1)),
}  # fmt: skip
# Methods (of pathlib.Path and the like) that change the file system; the receiver is the path.
_PATH_WRITE_METHODS = frozenset(_names("""
    write_text write_bytes unlink rmdir touch mkdir rename replace chmod lchmod symlink_to hardlink_to
    link_to"""))  # fmt: skip
_PATH_READ_METHODS = frozenset({"read_text", "read_bytes", "iterdir", "glob", "rglob", "readlink"})
_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"})


def scan_security(source_or_tree: str | ast.AST, *, names: _NameResolver | None = None) -> list[Finding]:
    """Security findings of a module (source or parsed tree), sorted by line. Raises SyntaxError on bad source.

    Exposed separately so the pipeline can scan a tool's test files with the same rules.
    """
    tree = ast.parse(source_or_tree) if isinstance(source_or_tree, str) else source_or_tree
    return _SecurityScan(tree, names or _NameResolver(tree)).run()


class _SecurityScan:
    def __init__(self, tree: ast.AST, names: _NameResolver) -> None:
        self.tree = tree
        self.names = names
        self.findings: dict[tuple[str, int, str], Finding] = {}
        self.parents: dict[ast.AST, ast.AST] = {
            child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
        }
        self.temp_names = self._temporary_names()
        # Module-level string constants, to show which path a write goes to ("_LOG = '/tmp/x.log'").
        self.constants = {
            target.id: node.value.value
            for node in getattr(tree, "body", [])
            if isinstance(node, ast.Assign) and _literal_str(node.value) is not None
            for target in node.targets
            if isinstance(target, ast.Name)
        }

    def run(self) -> list[Finding]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._check_name(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self._check_name(
                        f"{node.module}.{alias.name}" if alias.name != "*" else node.module, node.lineno
                    )
            elif isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
                self._check_reference(node)
            if isinstance(node, ast.Attribute) and node.attr in _ESCAPE_ATTRIBUTES:
                self._add(
                    "introspection", node.lineno, f"reaches interpreter internals ({node.attr})", "HIGH"
                )
            if isinstance(node, ast.Call):
                self._check_call(node)
        return sorted(self.findings.values(), key=lambda f: (f.line, f.rule, f.message))

    def _add(self, rule: str, line: int, message: str, risk: Risk) -> None:
        self.findings.setdefault((rule, line, message), Finding(rule, line, message, risk))

    def _check_name(self, name: str, line: int) -> None:
        for rule in _RULES:
            if rule.matches(name):
                self._add(rule.rule, line, f"{rule.what} ({_display(name)})", rule.risk)
                return

    def _check_reference(self, node: ast.AST) -> None:
        # Only the outermost node of a chain (os.environ.get, not os.environ and os) is reported.
        parent = self.parents.get(node)
        outer_resolves = parent is not None and self.names.resolve(parent) is not None
        if outer_resolves and isinstance(parent, (ast.Attribute, ast.Subscript)) and parent.value is node:
            return
        if outer_resolves and isinstance(parent, ast.Call) and parent.func is node:
            return
        if isinstance(node, ast.Call) and self.names.resolve(node.func) not in (
            "builtins.getattr",
            "builtins.__import__",
            "importlib.import_module",
            "builtins.vars",
        ):
            return
        name = self.names.resolve(node)
        if name is not None:
            self._check_name(name, node.lineno)

    def _check_call(self, call: ast.Call) -> None:
        func = self.names.resolve(call.func)
        line = call.lineno
        if func in ("builtins.__import__", "importlib.import_module"):
            self._add(
                "dynamic-import",
                line,
                f"imports modules dynamically ({func.removeprefix('builtins.')})",
                "HIGH",
            )
        if func == "builtins.getattr" and len(call.args) >= 2 and _literal_str(call.args[1]) is None:
            target = self.names.resolve(call.args[0])
            if target is not None:
                self._add("introspection", line, f"looks up attributes of {target} dynamically", "HIGH")
        if func in _OPENERS:
            path_index, mode_index, default_mode = _OPENERS[func]
            self._check_open(
                call,
                _argument(call, path_index, "path"),
                _argument(call, mode_index, "mode") if mode_index is not None else None,
                default_mode,
                func,
            )
        elif func in _FS_WRITERS:
            for index in _FS_WRITERS[func]:
                self._check_write(_argument(call, index, "dst" if index else "path"), line, func)
        elif isinstance(call.func, ast.Attribute) and func is None:
            method, receiver = call.func.attr, call.func.value
            if method in ("replace", "rename") and len(call.args) != 1:
                pass  # str.replace(old, new), not Path.replace(target)
            elif method in _PATH_WRITE_METHODS:
                self._check_write(receiver, line, f".{method}()")
            elif method in _PATH_READ_METHODS:
                self._add("file-read", line, f"reads the file system (.{method}())", "MEDIUM")
            elif method == "open" and self.names.resolve(receiver) is None:
                # Path.open(mode): the receiver is the path
                self._check_open(call, receiver, _argument(call, 0, "mode"), "r", ".open()")

    def _check_open(
        self, call: ast.Call, path: ast.AST | None, mode: ast.AST | None, default_mode: str, func: str
    ) -> None:
        if func == "os.open":
            flags = call.args[1] if len(call.args) > 1 else None
            flag_names = (
                {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "") for n in ast.walk(flags)}
                if flags is not None
                else set()
            )
            writes = flags is None or bool(flag_names & _WRITE_FLAGS) or not flag_names
        elif any(isinstance(arg, ast.Starred) for arg in call.args) or any(
            kw.arg is None for kw in call.keywords
        ):
            writes = True  # open(*args): cannot tell
        else:
            mode_text = default_mode if mode is None else _literal_str(mode)
            writes = mode_text is None or any(flag in mode_text for flag in "wax+")
        if writes:
            self._check_write(path, call.lineno, func)
        else:
            self._add("file-read", call.lineno, f"reads files ({self._describe_path(path)})", "MEDIUM")

    def _check_write(self, path: ast.AST | None, line: int, how: str) -> None:
        how = _display(how)
        if path is not None and self._is_temporary(path):
            self._add("file-write", line, f"writes inside a temporary directory ({how})", "MEDIUM")
        else:
            self._add(
                "file-write",
                line,
                f"writes or deletes files outside a temporary directory ({how} on {self._describe_path(path)})",
                "HIGH",
            )

    def _describe_path(self, path: ast.AST | None) -> str:
        if path is None:
            return "an unknown path"
        text = ast.unparse(path)
        if isinstance(path, ast.Name) and path.id in self.constants:
            text = f"{path.id} = {self.constants[path.id]!r}"
        return text if len(text) <= 80 else text[:77] + "..."

    def _temporary_names(self) -> set[str]:
        """Names every binding of which is a tempfile-made path (flow-insensitive, so a name that is also
        bound to anything else, e.g. a parameter or a literal path, is not temporary)."""
        bound: dict[str, list[ast.AST | None]] = {}  # None: bound from outside (a parameter)
        fixtures: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.arg):
                if node.arg in _TEMP_PARAMETERS:
                    fixtures.add(node.arg)
                else:
                    bound.setdefault(node.arg, []).append(None)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                value = ast.BinOp(left=ast.Name(id=node.target.id), op=node.op, right=node.value)
                bound.setdefault(node.target.id, []).append(value)
        for target, value in _bindings(self.tree):
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    bound.setdefault(name.id, []).append(value)
        temp = set(fixtures) - set(bound)
        for _ in range(50):
            grown = temp | {
                name
                for name, values in bound.items()
                # a binding that refers to the name itself (d += "/sub") keeps what the others make it
                if all(value is not None and self._is_temporary(value, temp | {name}) for value in values)
                and any(value is not None and self._is_temporary(value, temp) for value in values)
            }
            if grown == temp:
                break
            temp = grown
        return temp

    def _is_temporary(self, expr: ast.AST, temp: set[str] | None = None) -> bool:
        """Whether ``expr`` is built from a tempfile-made path, and cannot climb out of it."""
        temp = self.temp_names if temp is None else temp
        derived = False
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.id in temp:
                derived = True
            elif isinstance(node, ast.Call):
                if self.names.resolve(node.func) in _TEMP_SOURCES:
                    derived = True
                # os.path.join(tmp, "/etc/x") and Path(tmp, "/etc/x") drop tmp.
                if any(_is_absolute_literal(arg) for arg in node.args[1:]):
                    return False
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Div)
                and _is_absolute_literal(node.right)
            ):
                return False  # Path(tmp) / "/etc/x" is /etc/x
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ".." in node.value:
                return False  # climbs out of the temporary directory
        return derived


def _display(name: str) -> str:
    return name.removeprefix("builtins.")


def _is_absolute_literal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(("/", "~"))
    )


_KEYWORD_ALIASES = {"path": ("path", "src", "file", "name"), "dst": ("dst", "dest")}


def _argument(call: ast.Call, index: int, keyword_name: str) -> ast.AST | None:
    names = _KEYWORD_ALIASES.get(keyword_name, (keyword_name,))
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    args = [arg for arg in call.args if not isinstance(arg, ast.Starred)]
    return args[index] if index < len(args) else None
