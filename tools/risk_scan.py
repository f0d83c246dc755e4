"""The risk analyser: rates every Python file of a candidate tool by the rules of ``tools/risk_rules.py``.

Nothing of the candidate is imported or run: each file is read as a syntax tree. Only standard-library modules
named in the rules table are imported on the host, to see their re-exports (``shutil.os`` is ``os``); their
attributes are read from the module's ``__dict__``, so no module hook runs.

How it decides (the reasons are in the table):
- Every reference is resolved to dotted paths through imports, aliases (assignment chains, walrus, for
  targets, default arguments), ``getattr`` with a literal name, ``sys.modules[...]``, ``__import__`` and
  ``importlib.import_module`` with literal names. Resolution is flow- and scope-insensitive (a name bound to
  ``os.system`` anywhere is that everywhere), so it errs towards reporting.
- Each reference is rated where it appears, whatever is done with it (called, stored, passed): a dangerous
  path cannot be laundered through a container or a call. A module used as a value is at least MEDIUM.
- On a value the analyser cannot type (a call result, a parameter) an attribute must be a method of a pure
  type (str, list, dict, re.Match, datetime...) or a name the candidate defines; file methods (write_text,
  unlink...) are rated as file access, frame/code/generator internals and special names as HIGH.
- File access is MEDIUM only when every path is provably inside a fresh temporary directory (tempfile,
  or pytest's ``tmp_path`` in a test), joined with literal relative parts; otherwise HIGH.
- Docstrings, comments and strings are searched for text addressed to an AI model.
"""

from __future__ import annotations

import ast
import builtins
import copy
import functools
import importlib
import io
import re
import sys
import tokenize
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evorag.tools.risk_rules import (
    GATEWAY_METHODS,
    HARMLESS_DUNDERS,
    PURE_FIXTURES,
    PURE_METHODS_EXTRA,
    PURE_TYPES,
    RULES,
    RULES_BY_ID,
    RUNNER_FIXTURES,
    Risk,
    Rule,
    hidden_characters,
    instruction_like,
)

_DUNDER = re.compile(r"__[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*__")
_BUILTIN_NAMES = frozenset(dir(builtins))
_TEMP_SOURCES = frozenset({
    "tempfile.mkdtemp", "tempfile.mkstemp", "tempfile.TemporaryDirectory", "tempfile.NamedTemporaryFile",
    "tempfile.TemporaryFile", "tempfile.SpooledTemporaryFile",
})
_TEMP_FILE_OBJECTS = frozenset({"tempfile.NamedTemporaryFile", "tempfile.TemporaryFile", "tempfile.SpooledTemporaryFile"})
# Calls that keep a path inside the directory it starts from when the other parts are literal relative names.
_PATH_BUILDERS = frozenset({"builtins.str", "os.fspath", "os.path.join", "os.path.normpath", "pathlib.Path",
                            "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"})
# File functions whose second argument is a path too (a destination or a link target).
_TWO_PATHS = frozenset({"os.rename", "os.renames", "os.replace", "os.link", "os.symlink", "shutil.copy",
                        "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.copymode", "shutil.copystat",
                        "shutil.move"})
_PATH_TARGET_METHODS = frozenset({"rename", "replace", "symlink_to", "hardlink_to", "link_to"})
_PATH_CLASSES = frozenset({"pathlib.Path", "pathlib.PosixPath"})
_PATH_KEYWORDS = ("file", "path", "src", "filename", "pathname", "top")
_DST_KEYWORDS = ("dst", "dest", "target")


@dataclass(slots=True)
class Finding:
    """One lint or risk observation. ``blocking`` findings make the code gate fail."""

    rule: str
    line: int
    message: str
    risk: Risk = "LOW"
    blocking: bool = False
    file: str = ""

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.file else f"line {self.line}: {self.message}"

    def __str__(self) -> str:
        kind = "error" if self.blocking else self.risk
        return f"{self.describe()} [{self.rule}, {kind}]"


def scan_candidate(files: Mapping[str, str]) -> list[Finding]:
    """Risk findings of every Python file of a candidate (name -> source), ordered by file and line.

    Raises SyntaxError/ValueError for a file that does not parse and RecursionError for absurd nesting: the
    caller decides what an unreadable file means.
    """
    sources = {name: text for name, text in files.items() if name.endswith(".py")}
    trees = {name: _with_string_annotations(ast.parse(text, filename=name)) for name, text in sources.items()}
    modules = frozenset(name.removesuffix(".py") for name in trees)
    resolvers = {name: NameResolver(tree, candidate_modules=modules) for name, tree in trees.items()}
    # What each candidate module binds, so that ``tool.os`` in a test file is ``os``.
    exports = {name.removesuffix(".py"): resolver.aliases for name, resolver in resolvers.items()}
    local_names = frozenset().union(*(_defined_names(tree) for tree in trees.values()))
    findings: list[Finding] = []
    for name, tree in trees.items():
        stars = any(isinstance(n, ast.ImportFrom) and n.module in modules and any(a.name == "*" for a in n.names)
                    for n in ast.walk(tree))
        if stars:  # from tool import *: the bindings themselves depend on the other module
            resolver = NameResolver(tree, candidate_modules=modules, exports=exports)
        else:
            resolver = resolvers[name].with_exports(exports)
        findings += _FileScan(name, sources[name], tree, resolver, local_names).run()
    return findings


def scan_security(source_or_tree: str | ast.AST, *, filename: str = "tool.py") -> list[Finding]:
    """Risk findings of one module (source or tree); ``filename`` decides whether test-file rules apply."""
    if isinstance(source_or_tree, str):
        return scan_candidate({filename: source_or_tree})
    tree = _with_string_annotations(copy.deepcopy(source_or_tree))
    modules = frozenset({filename.removesuffix(".py")})
    resolver = NameResolver(tree, candidate_modules=modules)
    return _FileScan(filename, ast.unparse(tree), tree, resolver, _defined_names(tree)).run()


def _with_string_annotations(tree: ast.AST) -> ast.AST:
    """``tree`` plus, as statements at the end, the expressions written as strings in annotations.

    A string annotation is code to whatever evaluates it (``typing.get_type_hints``, which
    ``functools.singledispatch().register`` calls): ``def f(x: "eval(...)")`` must be rated like ``eval(...)``.
    """
    extra: list[ast.stmt] = []
    pending = [node for node in ast.walk(tree) for node in _annotations(node)]
    while pending and len(extra) < 1000:
        annotation = pending.pop()
        for node in ast.walk(annotation):
            text = _literal_str(node)
            if not text:
                continue
            try:
                parsed = ast.parse(text.strip(), mode="eval").body
            except (SyntaxError, ValueError, RecursionError):
                continue
            for child in ast.walk(parsed):
                if hasattr(child, "lineno"):
                    ast.copy_location(child, node)
            extra.append(ast.copy_location(ast.Expr(parsed), node))
            pending.append(parsed)
    if extra and isinstance(tree, ast.Module):
        tree.body.extend(extra)
    return tree


def _annotations(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.arg):
        return [node.annotation] if node.annotation is not None else []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.returns] if node.returns is not None else []
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    return []


# ----------------------------------------------------------------------------------------------------------
# Name resolution


class NameResolver:
    """Maps names to the dotted paths they may stand for (a set: flow-insensitive, errs towards reporting).

    ``opaque`` holds the names that also have a binding the resolver cannot follow (a parameter, a call
    result): an attribute of such a name is judged both as a path and as an attribute of an unknown value.
    """

    def __init__(self, tree: ast.AST, *, candidate_modules: frozenset[str] = frozenset({"tool"}),
                 exports: Mapping[str, Mapping[str, set[str]]] | None = None) -> None:
        self.candidate_modules = candidate_modules
        self.exports = exports or {}
        self.aliases: dict[str, set[str]] = {}
        self.opaque: set[str] = set()
        self.modules: set[str] = set(candidate_modules)  # dotted paths known to be modules
        self.local_loads = _function_local_loads(tree)
        self._cache: dict[int, frozenset[str]] | None = None  # filled once the aliases are final
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.modules.add(alias.name)
                    if alias.asname:
                        self._bind(alias.asname, {alias.name})
                    else:
                        self._bind(alias.name.split(".")[0], {alias.name.split(".")[0]})
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        if node.module in self.exports and not node.level:
                            for name, paths in self.exports[node.module].items():
                                self._bind(name, set(paths))
                    elif node.level:
                        self.opaque.add(alias.asname or alias.name)
                    else:
                        self._bind(alias.asname or alias.name, {f"{node.module}.{alias.name}"})
            else:
                self.opaque |= _bound_from_outside(node)
        bindings = _bindings(tree)
        for _ in range(20):  # assignments chain (a = os; b = a.system): iterate to a fixed point
            before = sum(len(paths) for paths in self.aliases.values())
            for target, value in bindings:
                for name, paths in self._targets(target, value):
                    if paths:
                        self._bind(name, paths)
                    else:
                        self.opaque.add(name)
            if sum(len(paths) for paths in self.aliases.values()) == before:
                break
        self._cache = {}

    def with_exports(self, exports: Mapping[str, Mapping[str, set[str]]]) -> NameResolver:
        """This resolver, now following the re-exports of the candidate's other modules."""
        self.exports = exports
        self._cache = {}
        return self

    def _bind(self, name: str, paths: set[str]) -> None:
        self.aliases.setdefault(name, set()).update(paths)

    def _targets(self, target: ast.AST, value: ast.AST | None) -> list[tuple[str, set[str]]]:
        if isinstance(target, ast.Name):
            return [(target.id, set(self.resolve(value)) if value is not None else set())]
        if isinstance(target, ast.Starred):
            return self._targets(target.value, None)
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                return [pair for t, v in zip(target.elts, value.elts) for pair in self._targets(t, v)]
            return [pair for t in target.elts for pair in self._targets(t, None)]
        return []

    def is_opaque(self, node: ast.AST) -> bool:
        """Whether ``node`` may hold a value the resolver does not know (besides the paths it resolves to)."""
        if isinstance(node, ast.Name):
            return node.id in self.opaque or node.id not in self.aliases
        return not self.resolve(node)

    def resolve(self, node: ast.AST | None) -> frozenset[str]:
        """The dotted paths ``node`` may stand for ("subprocess.run"); empty when unknown."""
        if self._cache is not None and id(node) in self._cache:
            return self._cache[id(node)]
        paths = frozenset(path for raw in self._resolve(node) for path in self._expand(raw, 0))
        if self._cache is not None and node is not None:
            self._cache[id(node)] = paths
        return paths

    def resolve_one(self, node: ast.AST) -> str | None:
        paths = self.resolve(node)
        return next(iter(paths)) if len(paths) == 1 else None

    def _resolve(self, node: ast.AST | None) -> set[str]:
        if node is None:
            return set()
        if isinstance(node, ast.Name):
            paths = set(self.aliases.get(node.id, ()))
            if node.id in _BUILTIN_NAMES and id(node) not in self.local_loads:
                paths.add(f"builtins.{node.id}")
            if node.id == "__builtins__":
                paths.add("builtins")
            return paths
        if isinstance(node, ast.Attribute):
            if node.attr == "__dict__":
                return set(self.resolve(node.value))  # os.__dict__["system"] is os.system
            return {f"{path}.{node.attr}" for path in self.resolve(node.value)}
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, (ast.Tuple, ast.List)):
                return {path for element in node.value.elts for path in self.resolve(element)}
            key = _literal_str(node.slice)
            if key is None:
                return set()
            bases = self.resolve(node.value)
            return {key if base == "sys.modules" else f"{base}.{key}" for base in bases}
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            first = _literal_str(node.args[0]) if node.args else None
            if "builtins.getattr" in func and len(node.args) >= 2 and _literal_str(node.args[1]):
                return {f"{path}.{_literal_str(node.args[1])}" for path in self.resolve(node.args[0])}
            if "builtins.__import__" in func and first:
                return {first.split(".")[0], first}
            if "importlib.import_module" in func and first:
                return {first}
            if "builtins.vars" in func and node.args:
                return set(self.resolve(node.args[0]))
            return set()
        if isinstance(node, ast.IfExp):
            return set(self.resolve(node.body)) | set(self.resolve(node.orelse))
        if isinstance(node, ast.BoolOp):
            return {path for value in node.values for path in self.resolve(value)}
        if isinstance(node, ast.NamedExpr):
            return set(self.resolve(node.value))
        return set()

    def _expand(self, path: str, depth: int) -> set[str]:
        """``tool.os.system`` is ``os.system`` when the candidate's tool.py binds ``os``: follow re-exports."""
        parts = path.split(".")
        if depth > 5 or len(parts) < 2 or parts[0] not in self.exports:
            return {path}
        bound = self.exports[parts[0]].get(parts[1], ())
        expanded = {path}
        for target in bound:
            expanded |= self._expand(".".join([target, *parts[2:]]), depth + 1)
        return expanded


@functools.lru_cache(maxsize=16)
def _bindings(tree: ast.AST) -> list[tuple[ast.AST, ast.AST | None]]:
    """(target, value) pairs: assignments, walrus, for targets (over literal containers: each element),
    with-items, and parameters with their defaults."""
    pairs: list[tuple[ast.AST, ast.AST | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs += [(target, node.value) for target in node.targets]
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            pairs.append((node.target, node.value))
        elif isinstance(node, ast.AugAssign):
            pairs.append((node.target, ast.BinOp(left=_load(node.target), op=node.op, right=node.value)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            pairs += [(item.optional_vars, item.context_expr) for item in node.items if item.optional_vars]
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            if isinstance(node.iter, (ast.Tuple, ast.List, ast.Set)):
                pairs += [(node.target, element) for element in node.iter.elts]
            else:
                pairs.append((node.target, None))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = args.posonlyargs + args.args
            defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
            for arg, default in [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]:
                if default is not None:
                    pairs.append((ast.Name(id=arg.arg, ctx=ast.Store()), default))
    return pairs


def _binding_values(tree: ast.AST, *, skip_args: set[int] = frozenset(),  # type: ignore[assignment]
                    unpacks=lambda value: False) -> dict[str, list[ast.AST | None]]:
    """Every binding of every name: the value assigned, or None when it comes from outside (a parameter,
    an import, an exception, a def, an unpacked tuple...). ``unpacks(value)`` keeps the value of a tuple
    target (``fd, name = tempfile.mkstemp()``)."""
    bound: dict[str, list[ast.AST | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and id(node) not in skip_args:
            bound.setdefault(node.arg, []).append(None)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.setdefault(node.name, []).append(None)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.setdefault(node.rest, []).append(None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.setdefault((alias.asname or alias.name).split(".")[0], []).append(None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.setdefault(node.name, []).append(None)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bound.setdefault(name, []).append(None)
    for target, value in _bindings(tree):
        if isinstance(target, ast.Name) and isinstance(value, ast.Name) and value.id == target.id:
            continue  # a parameter's default restated by _bindings
        for name in ast.walk(target):
            if isinstance(name, ast.Name):
                keep = isinstance(target, ast.Name) or unpacks(value)
                bound.setdefault(name.id, []).append(value if keep else None)
    return bound


def _bound_from_outside(node: ast.AST) -> set[str]:
    """Names ``node`` binds to a value the resolver cannot know: parameters, defs, exceptions, match captures."""
    if isinstance(node, ast.arg):
        return {node.arg}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler, ast.MatchAs,
                         ast.MatchStar)):
        return {node.name} if node.name else set()
    if isinstance(node, ast.MatchMapping) and node.rest:
        return {node.rest}
    return set()


def _load(target: ast.AST) -> ast.AST:
    return ast.Name(id=target.id, ctx=ast.Load()) if isinstance(target, ast.Name) else target


def _function_local_loads(tree: ast.AST) -> set[int]:
    """ids of the Name loads that refer to a local of an enclosing function, lambda or comprehension: those
    never fall back to a builtin. Names at module or class level may, so they are judged as builtins too."""
    local: set[int] = set()

    def visit(node: ast.AST, scopes: tuple[frozenset[str], ...]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in [*node.args.defaults, *node.args.kw_defaults, *getattr(node, "decorator_list", [])]:
                if child is not None:
                    visit(child, scopes)
            for arg in ast.walk(node.args):
                if isinstance(arg, ast.arg) and arg.annotation is not None:
                    visit(arg.annotation, scopes)
            inner = scopes + (_scope_names(node),)
            body = node.body if isinstance(node.body, list) else [node.body]
            for statement in body:
                visit(statement, inner)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            names = frozenset(n.id for gen in node.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name))
            visit(node.generators[0].iter, scopes)  # evaluated in the enclosing scope
            inner = scopes + (names,)
            for gen in node.generators:
                for part in [gen.target, *gen.ifs] + ([gen.iter] if gen is not node.generators[0] else []):
                    visit(part, inner)
            for part in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
                visit(part, inner)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if any(node.id in scope for scope in scopes):
                local.add(id(node))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, ())
    return local


def _scope_names(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """The names a function binds locally (parameters, assignments, defs, imports), minus ``global`` ones."""
    names = {arg.arg for arg in ast.walk(function.args) if isinstance(arg, ast.arg)}
    declared_global: set[str] = set()
    pending = list(function.body) if isinstance(function.body, list) else [function.body]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # its body is another scope
        if isinstance(node, ast.Lambda):
            continue  # another scope
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            # a walrus inside a comprehension binds in the function; the comprehension's targets do not
            names |= {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            declared_global |= set(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        else:
            names |= _bound_from_outside(node)
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(names - declared_global)


def _defined_names(tree: ast.AST) -> set[str]:
    """Attribute names the candidate defines itself: functions, classes, class attributes, ``self.x``,
    keyword arguments and named-tuple fields. An attribute of an untyped value may use them."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    targets = statement.targets if isinstance(statement, ast.Assign) else (
                        [statement.target] if isinstance(statement, ast.AnnAssign) else [])
                    names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and _call_name(node.func) in (
            "namedtuple", "NamedTuple", "Enum", "IntEnum", "StrEnum"):
            fields = node.args[1]
            texts = [fields] if isinstance(fields, ast.Constant) else getattr(fields, "elts", [])
            for text in texts:
                if isinstance(text, ast.Tuple) and text.elts:
                    text = text.elts[0]
                value = _literal_str(text)
                if value:
                    names |= set(re.findall(r"[A-Za-z_]\w*", value))
    return {name for name in names if not _DUNDER.fullmatch(name)}


def _call_name(func: ast.AST) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


# ----------------------------------------------------------------------------------------------------------
# The table, as the analyser reads it


class _Table:
    def __init__(self, tests: bool) -> None:
        rules = [rule for rule in RULES if rule.names and (tests or not rule.tests_only)]
        self.entries = sorted(((name, rule) for rule in rules for name in rule.names),
                              key=lambda entry: -len(entry[0].rstrip("*")))
        self.low = [name for name, rule in self.entries if rule.risk == "LOW"]
        self.roots = {name.split(".")[0] for name, _ in self.entries} - {"builtins"}

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - two tables for the process lifetime
    def lookup(self, path: str) -> tuple[str, Rule] | None:
        """The longest row matching ``path``: (the matched prefix, its rule)."""
        for name, rule in self.entries:
            if name.endswith("*"):
                if path.startswith(name[:-1]):
                    return name, rule
            elif path == name or path.startswith(name + "."):
                return name, rule
        return None

    def has_low_under(self, module: str) -> bool:
        """Whether some allowlisted name lives inside ``module`` (then importing it is judged by its uses)."""
        return any(name == module or name.startswith(module + ".") for name in self.low)


_TABLES = {tests: _Table(tests) for tests in (False, True)}
_TABLE_NAMES = frozenset(name.rstrip("*") for rule in RULES for name in rule.names)


@functools.lru_cache(maxsize=256)
def _host_module(name: str) -> types.ModuleType | None:
    """A standard-library module named in the table (or a root of such a name), imported on the host."""
    if name.split(".")[0] not in sys.stdlib_module_names or "__" in name:
        return None
    if name not in _TABLE_NAMES and name not in {n.split(".")[0] for n in _TABLE_NAMES}:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not on this platform: no re-exports to see
        return None


@functools.lru_cache(maxsize=8192)
def canonical(path: str) -> tuple[str, bool]:
    """(``path`` with re-exported modules replaced by their own names, whether it names a module).

    ``json.codecs.open`` is ``codecs.open``; names the table lists (``os.path``) are kept as written.
    """
    parts = path.split(".")
    module = _host_module(parts[0])
    current = parts[0]
    for index, attr in enumerate(parts[1:], start=1):
        candidate = f"{current}.{attr}"
        if module is None or _DUNDER.fullmatch(attr):
            return ".".join([current, *parts[index:]]), False
        value = vars(module).get(attr)
        if not isinstance(value, types.ModuleType):
            value = _host_module(candidate) if value is None and candidate in _TABLE_NAMES else None
        if isinstance(value, types.ModuleType):
            listed = candidate in _TABLE_NAMES or any(n.startswith(candidate + ".") for n in _TABLE_NAMES)
            current = candidate if listed else value.__name__
            module = value
        else:
            return ".".join([candidate, *parts[index + 1:]]), False
    return current, module is not None


@dataclass(frozen=True, slots=True)
class _Verdict:
    rule: Rule
    display: str


def rate_path(path: str, *, tests: bool, candidate_modules: frozenset[str] = frozenset()) -> _Verdict | None:
    """The rule a reference to ``path`` falls under, or None when it is pure (LOW)."""
    if path.split(".")[0] in candidate_modules:
        return None
    canon, _ = canonical(path)
    display = canon.removeprefix("builtins.")
    table = _TABLES[tests]
    found = table.lookup(canon)
    if found is None:
        root = canon.split(".")[0]
        rule_id = "unlisted-name" if root in table.roots or root == "builtins" else "unknown-module"
        return _Verdict(RULES_BY_ID[rule_id], display)
    prefix, rule = found
    if rule.risk == "LOW" and prefix in _PATH_CLASSES and canon.split(".")[-1] in file_methods():
        return _Verdict(RULES_BY_ID["files"], display)  # Path.write_text(p, ...), Path.cwd()
    if rule.risk != "LOW":
        return _Verdict(rule, display)
    rest = canon[len(prefix.rstrip("*")):].split(".")
    if any(part.startswith("_") and not _DUNDER.fullmatch(part) for part in rest):
        return _Verdict(RULES_BY_ID["private-name"], display)
    return None


def _public_attributes(path: str) -> set[str]:
    """Public attribute names of a type the rules table names (standard library only)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
        return {name for name in dir(obj) if not name.startswith("_")} if obj is not None else set()
    return set()


@functools.cache
def pure_methods() -> frozenset[str]:
    """Public methods and attributes of the pure types: what code may use on a value it got from pure code."""
    names = set(PURE_METHODS_EXTRA)
    for path in PURE_TYPES:
        names |= _public_attributes(path)
    return frozenset(names - GATEWAY_METHODS)


@functools.cache
def file_methods() -> frozenset[str]:
    """The I/O methods of pathlib.Path: the methods Path has and PurePath has not (``group`` is also
    re.Match.group and only reads the owner's group name, so it counts as pure)."""
    import pathlib

    return frozenset(n for n in set(dir(pathlib.Path)) - set(dir(pathlib.PurePath)) if not n.startswith("_")) - {"group"}


@functools.cache
def interpreter_internals() -> frozenset[str]:
    """Attributes of frames, code objects, tracebacks, generators, coroutines, cells and functions that
    are not also methods of pure types (gi_frame, f_globals, f_back, tb_frame, co_code, cr_frame...)."""

    def generator():
        yield

    async def coroutine():
        pass

    async def async_generator():
        yield

    kinds = [types.FrameType, types.CodeType, types.TracebackType, types.FunctionType, types.MethodType,
             types.BuiltinFunctionType, types.CellType, types.ModuleType, type, type(generator()),
             types.CoroutineType, type(async_generator())]
    del coroutine
    names = {name for kind in kinds for name in dir(kind) if not name.startswith("__")}
    return frozenset(names - pure_methods())


# ----------------------------------------------------------------------------------------------------------
# One file


class _FileScan:
    def __init__(self, filename: str, source: str, tree: ast.AST, names: NameResolver,
                 local_names: Iterable[str]) -> None:
        self.filename = filename
        self.source = source
        self.tree = tree
        self.names = names
        self.tests = filename.startswith("test_")
        self.table = _TABLES[self.tests]
        self.local_names = frozenset(local_names)
        self.findings: dict[tuple[str, int, str], Finding] = {}
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        self.handled: set[int] = set()  # references reported by their call's own check
        self.doc_strings = {id(node.value) for node in ast.walk(tree)
                            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
        self.fixture_params, self.overridden = self._fixture_parameters()
        self.temp = _TempPaths(tree, names, self.fixture_params)
        self.string_constants = self._string_constants()

    def run(self) -> list[Finding]:
        self._text_checks()
        self._pytest_checks()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._check_call(node)  # first: it marks the references it reports itself
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._check_import(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                self._check_import_from(node)
            elif isinstance(node, ast.Name):
                self._check_special_name(node.id, node.lineno)
                if isinstance(node.ctx, ast.Load):
                    self._check_reference(node)
            elif isinstance(node, ast.Attribute):
                self._check_attribute(node)
            elif isinstance(node, (ast.Subscript, ast.Call)):
                self._check_reference(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                self._check_constant(node)
            elif isinstance(node, ast.MatchClass):
                for attr in node.kwd_attrs:  # case C(attr=...) reads the attribute
                    self._check_attribute_name(attr, node, None, None)
        return sorted(self.findings.values(), key=lambda f: (f.line, f.rule, f.message))

    def add(self, rule_id: str, line: int, detail: str) -> None:
        rule = RULES_BY_ID[rule_id]
        message = f"{rule.reason} ({detail})" if detail else rule.reason
        self.findings.setdefault((rule_id, line, message), Finding(rule_id, line, message, rule.risk, file=self.filename))

    # --- imports and references ---------------------------------------------------------------------------

    def _check_import(self, module: str, line: int, statement: str | None = None) -> None:
        if module.split(".")[0] in self.names.candidate_modules or self.table.has_low_under(module):
            return  # judged by what the file uses of it
        verdict = self._rate(module)
        if verdict is not None:
            self.add(verdict.rule.id, line, statement or f"import {verdict.display}")

    def _check_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add("unknown-module", node.lineno, f"relative import from {'.' * node.level}{node.module or ''}")
            return
        for alias in node.names:
            if alias.name == "*":
                if node.module not in self.names.candidate_modules:
                    self.add("star-import", node.lineno, f"from {node.module} import *")
                    verdict = self._rate(node.module)  # it binds every public name: the module counts whole
                    if verdict is not None:
                        self.add(verdict.rule.id, node.lineno, f"import {verdict.display}")
            else:
                self._check_import(f"{node.module}.{alias.name}", node.lineno,
                                   f"from {node.module} import {alias.name}")

    def _rate(self, path: str) -> _Verdict | None:
        return rate_path(path, tests=self.tests, candidate_modules=self.names.candidate_modules)

    def _check_reference(self, node: ast.AST) -> None:
        """Rate what ``node`` refers to, at its outermost resolvable form (``os.environ.get``, not ``os``)."""
        if id(node) in self.handled:
            return
        paths = self.names.resolve(node)
        if not paths:
            return
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node and self.names.resolve(parent):
            return
        if (isinstance(parent, ast.Call) and node in parent.args[:1] and "builtins.getattr" in
                self.names.resolve(parent.func) and self.names.resolve(parent)):
            return  # getattr(x, "name") is judged as x.name
        for path in sorted(paths):
            verdict = self._rate(path)
            if verdict is None:
                if self._is_module(path) and not self._alias_binding(node):
                    self.add("module-value", node.lineno, canonical(path)[0])
            else:
                self.add(verdict.rule.id, node.lineno, verdict.display)

    def _is_module(self, path: str) -> bool:
        return path in self.names.modules or canonical(path)[1]

    def _alias_binding(self, node: ast.AST) -> bool:
        """``j = json``: a plain alias the resolver follows, not a module escaping into a value."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Assign) and parent.value is node:
            return all(isinstance(target, ast.Name) for target in parent.targets)
        if isinstance(parent, (ast.AnnAssign, ast.NamedExpr)) and parent.value is node:
            return isinstance(parent.target, ast.Name)
        return False

    def _check_special_name(self, name: str, line: int) -> None:
        if _DUNDER.fullmatch(name) and name not in HARMLESS_DUNDERS:
            self.add("dunder", line, name)

    # --- attributes -------------------------------------------------------------------------------------

    def _check_attribute(self, node: ast.Attribute) -> None:
        receiver = node.value
        parent = self.parents.get(node)
        call = parent if isinstance(parent, ast.Call) and parent.func is node else None
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._check_special_name(node.attr, node.lineno)
            targets = [p for p in self.names.resolve(receiver) if p.split(".")[0] not in self.names.candidate_modules]
            if targets:
                self.add("module-patch", node.lineno, f"{canonical(min(targets))[0]}.{node.attr}")
            return
        self._check_reference(node)
        if self.names.is_opaque(receiver):
            self._check_attribute_name(node.attr, node, receiver, call)
        else:
            self._check_special_name(node.attr, node.lineno)
            if node.attr in interpreter_internals():
                self.add("internals", node.lineno, f".{node.attr}")

    def _check_attribute_name(self, attr: str, node: ast.AST, receiver: ast.AST | None, call: ast.Call | None) -> None:
        """An attribute of a value the analyser cannot type: only pure methods and the candidate's own names."""
        line = node.lineno
        if _DUNDER.fullmatch(attr):
            self._check_special_name(attr, line)
        elif attr in interpreter_internals():
            self.add("internals", line, f".{attr}")
        elif attr in GATEWAY_METHODS:
            self.add("gateway", line, f".{attr}()")
        elif attr in file_methods() and not (attr == "replace" and not _path_replace(call)):
            paths = [receiver] if receiver is not None else []
            if call is not None and attr in _PATH_TARGET_METHODS:
                paths.append(_argument(call, 0, _DST_KEYWORDS))
            if call is not None and receiver is not None and all(p is not None and self.temp.contains(p) for p in paths):
                self.add("temp-files", line, f".{attr}()")
            else:
                target = self._describe(receiver) if receiver is not None else "an unknown path"
                self.add("files", line, f".{attr}() on {target}")
        elif attr in ("format", "format_map") and call is not None:
            if not self._literal_template(receiver) and not self.names.resolve(receiver):  # str.format: below
                self.add("runtime-format", line, f"{self._describe(receiver)}.{attr}()")
        elif attr == "replace" and call is None:
            self.add("untyped-attribute", line, ".replace (str.replace or pathlib.Path.replace)")
        elif attr not in pure_methods() and attr not in self.local_names:
            self.add("untyped-attribute", line, f".{attr}()" if call is not None else f".{attr}")

    def _literal_template(self, node: ast.AST | None) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return True
        return isinstance(node, ast.Name) and node.id in self.string_constants

    # --- calls ----------------------------------------------------------------------------------------

    def _check_call(self, call: ast.Call) -> None:
        funcs = self.names.resolve(call.func)
        line = call.lineno
        accessors = funcs & {"builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.hasattr"}
        if accessors:
            name = _literal_str(call.args[1]) if len(call.args) >= 2 else None
            if name is None:
                rule = "probe-attribute" if accessors == {"builtins.hasattr"} else "dynamic-attribute"
                self.add(rule, line, f"{min(accessors).removeprefix('builtins.')} with a computed name")
            else:
                self.handled.add(id(call.func))
                receiver = call.args[0]
                getter = "builtins.getattr" in accessors or "builtins.hasattr" in accessors
                if getter and self.names.is_opaque(receiver):
                    self._check_attribute_name(name, call, receiver, None)
                if not getter:
                    self._check_special_name(name, line)
                    targets = [p for p in self.names.resolve(receiver)
                               if p.split(".")[0] not in self.names.candidate_modules]
                    if targets:
                        self.add("module-patch", line, f"{canonical(min(targets))[0]}.{name}")
        if "builtins.type" in funcs and len(call.args) == 3:
            self.add("runtime-class", line, "type(name, bases, namespace)")
        formats = funcs & {"builtins.str.format", "builtins.str.format_map"}
        if formats and (not call.args or not self._literal_template(call.args[0])):
            self.add("runtime-format", line, "str.format")
        if funcs & {"functools.wraps", "functools.update_wrapper"} and (
                len(call.args) > 1 or any(k.arg in ("assigned", "updated", None) for k in call.keywords)):
            self.add("dynamic-attribute", line, "functools.wraps with the attribute names as arguments")
        conditions = [f for f in funcs if f.startswith("pytest.mark.") and f.endswith((".skipif", ".xfail"))]
        if conditions and call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
            self.add("pytest-eval", line, "skipif/xfail with a string condition")
        verdicts = {func: self._rate(func) for func in funcs}
        if verdicts and all(v is None or v.rule.id in ("files", "temp-files") for v in verdicts.values()):
            self.handled.add(id(call.func))  # reported here, with the paths the call touches
        for func, verdict in sorted(verdicts.items()):
            if verdict is None:
                continue
            if verdict.rule.id == "files":
                self._file_call(call, func, verdict)
            elif verdict.rule.id == "temp-files":
                problem = _tempfile_problem(call, func)
                if problem:
                    self.add("files", line, f"{verdict.display} {problem}")
                else:
                    self.add("temp-files", line, verdict.display)

    def _file_call(self, call: ast.Call, func: str, verdict: _Verdict) -> None:
        method = func.rsplit(".", 1)[-1]
        paths = [_argument(call, 0, _PATH_KEYWORDS)]
        if canonical(func)[0] in _TWO_PATHS or (func.startswith("pathlib.") and method in _PATH_TARGET_METHODS):
            paths.append(_argument(call, 1, _DST_KEYWORDS))
        if all(path is not None and self.temp.contains(path) for path in paths):
            self.add("temp-files", call.lineno, verdict.display)
            return
        outside = next((p for p in paths if p is None or not self.temp.contains(p)), None)
        self.add("files", call.lineno, f"{verdict.display} on {self._describe(outside)}")

    def _describe(self, node: ast.AST | None) -> str:
        """The code of ``node`` for a reason, shortened; never text that reads like instructions (reasons are
        shown to approvers and listed over MCP)."""
        if node is None:
            return "an unknown path"
        text = " ".join(ast.unparse(node).split())
        if isinstance(node, ast.Name) and node.id in self.string_constants:
            text = f"{node.id} = {self.string_constants[node.id]!r}"
        if instruction_like(text) or hidden_characters(text):
            return "an expression whose text is withheld"
        return text if len(text) <= 80 else text[:77] + "..."

    def _string_constants(self) -> dict[str, str]:
        """Names every binding of which is the same string literal (``_LOG = "/tmp/x"``, a template)."""
        constants = {}
        for name, values in _binding_values(self.tree).items():
            texts = {_literal_str(value) for value in values}
            if len(texts) == 1 and None not in texts:
                constants[name] = texts.pop()
        return constants

    # --- text -----------------------------------------------------------------------------------------

    def _check_constant(self, node: ast.Constant) -> None:
        text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
        if id(node) not in self.doc_strings:
            for dunder in _DUNDER.findall(text):
                if dunder not in HARMLESS_DUNDERS:
                    self.add("dunder", node.lineno, f"the string names {dunder}")
        why = instruction_like(text)
        if why:
            self.add("instruction", node.lineno, why)

    def _text_checks(self) -> None:
        hidden = hidden_characters(self.source)
        if hidden:
            line = next((n for n, text in enumerate(self.source.splitlines(), 1) if hidden_characters(text)), 1)
            self.add("hidden-text", line, hidden)
        try:
            comments = [t for t in tokenize.generate_tokens(io.StringIO(self.source).readline)
                        if t.type == tokenize.COMMENT]
        except (tokenize.TokenError, SyntaxError):
            comments = []
        for token in comments:
            why = instruction_like(token.string)
            if why:
                self.add("instruction", token.start[0], why)

    # --- pytest ---------------------------------------------------------------------------------------

    def _fixture_parameters(self) -> tuple[set[int], set[str]]:
        """ids of the ``ast.arg`` nodes that are pytest fixture requests in a test file, and the fixture
        names overridden by ``parametrize`` (which then hold whatever values the test lists)."""
        if not self.tests:
            return set(), set()
        functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        own = {f.name for f in functions if any(_is_fixture(d) for d in f.decorator_list)}
        requests: set[int] = set()
        overridden: set[str] = set()
        for function in functions:
            if not (function.name.startswith("test") or function.name in own):
                continue
            parametrized = _parametrized_names(function)
            overridden |= parametrized
            args = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
            if args and args[0].arg in ("self", "cls"):
                args = args[1:]
            requests |= {id(a) for a in args if a.arg not in parametrized and a.arg not in own}
        return requests, overridden

    def _pytest_checks(self) -> None:
        for node in getattr(self.tree, "body", []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            else:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names = [n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)]
            for name in names:
                if name.startswith("pytest_"):
                    self.add("pytest-plugin", node.lineno, name)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.arg) and id(node) in self.fixture_params:
                if node.arg in RUNNER_FIXTURES:
                    self.add("runner-fixture", node.lineno, node.arg)
                elif node.arg not in PURE_FIXTURES:
                    self.add("unknown-fixture", node.lineno, node.arg)


def _is_fixture(decorator: ast.AST) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return _call_name(target) == "fixture"


def _parametrized_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names: set[str] = set()
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and _call_name(decorator.func) == "parametrize" and decorator.args:
            first = decorator.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names |= {part.strip() for part in first.value.split(",")}
            elif isinstance(first, (ast.List, ast.Tuple)):
                names |= {e.value for e in first.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            else:
                names.add("*")  # names the analyser cannot read: no fixture of this test counts as temporary
    return names


def _path_replace(call: ast.Call | None) -> bool:
    """``p.replace(target)`` renames a file; ``s.replace(old, new)`` and ``d.replace(year=1)`` do not."""
    return call is not None and len(call.args) == 1 and not call.keywords


def _argument(call: ast.Call, index: int, keywords: tuple[str, ...]) -> ast.AST | None:
    for keyword in call.keywords:
        if keyword.arg in keywords:
            return keyword.value
    if any(isinstance(arg, ast.Starred) for arg in call.args[: index + 1]):
        return None
    return call.args[index] if index < len(call.args) else None


_TEMPFILE_POSITIONS = {  # positional indexes of (suffix, prefix, dir)
    "tempfile.mkdtemp": (0, 1, 2), "tempfile.mkstemp": (0, 1, 2), "tempfile.TemporaryDirectory": (0, 1, 2),
    "tempfile.NamedTemporaryFile": (4, 5, 6), "tempfile.TemporaryFile": (4, 5, 6),
    "tempfile.SpooledTemporaryFile": (5, 6, 7),
}


def _tempfile_problem(call: ast.Call, func: str) -> str | None:
    """Why a tempfile call may create files outside a fresh temporary directory, else None."""
    positions = _TEMPFILE_POSITIONS.get(canonical(func)[0])
    if positions is None:
        return None
    if any(isinstance(arg, ast.Starred) for arg in call.args) or any(k.arg is None for k in call.keywords):
        return "with arguments the analyser cannot read"
    given = {name: call.args[i] for name, i in zip(("suffix", "prefix", "dir"), positions) if i < len(call.args)}
    given.update({k.arg: k.value for k in call.keywords if k.arg in ("suffix", "prefix", "dir")})
    directory = given.get("dir")
    if directory is not None and not (isinstance(directory, ast.Constant) and directory.value is None):
        return f"with dir={ast.unparse(directory)[:60]}"
    for name in ("suffix", "prefix"):
        value = given.get(name)
        if value is not None and not (isinstance(value, ast.Constant) and (
                value.value is None or (isinstance(value.value, str) and _plain_name(value.value)))):
            return f"with {name}={ast.unparse(value)[:60]}"
    return None


def _plain_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and ".." not in text and "\0" not in text


# ----------------------------------------------------------------------------------------------------------
# Paths inside a temporary directory


class _TempPaths:
    """Which expressions are provably paths inside a fresh temporary directory.

    Roots: calls of tempfile's makers (with safe arguments), pytest's ``tmp_path`` fixture in a test (not
    when parametrize overrides it), ``tmp_path_factory.mktemp()``. A root stays inside when joined with
    literal relative parts without ``..`` (``/``, ``os.path.join``, ``Path(root, ...)``, ``joinpath``) or
    concatenated with a literal starting with ``/``. A name is a root when every binding of it is one.
    """

    def __init__(self, tree: ast.AST, names: NameResolver, fixture_params: set[int]) -> None:
        self.names = names
        fixtures = {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg) and id(node) in fixture_params
                    and node.arg in PURE_FIXTURES}
        fixture_args = {id(node) for node in ast.walk(tree)
                        if isinstance(node, ast.arg) and id(node) in fixture_params and node.arg in PURE_FIXTURES}
        bound = _binding_values(tree, skip_args=fixture_args, unpacks=self._unpacks_temp_source)
        self.factories = {name for name in fixtures if name == "tmp_path_factory"} - set(bound)
        self.files: set[str] = set()
        self.roots = ({name for name in fixtures if name == "tmp_path"} - set(bound))
        for _ in range(50):
            grown = set(self.roots)
            for name, values in bound.items():
                if values and all(v is not None and self._contains(v, self.roots | {name}) for v in values) and any(
                        v is not None and self._contains(v, self.roots) for v in values):
                    grown.add(name)
                    if any(self._is_temp_file(v) for v in values):
                        self.files.add(name)
            if grown == self.roots:
                break
            self.roots = grown

    def _unpacks_temp_source(self, value: ast.AST | None) -> bool:
        return isinstance(value, ast.Call) and bool(self.names.resolve(value.func) & {"tempfile.mkstemp"})

    def _is_temp_file(self, value: ast.AST | None) -> bool:
        return isinstance(value, ast.Call) and bool(self.names.resolve(value.func) & _TEMP_FILE_OBJECTS)

    def contains(self, expr: ast.AST) -> bool:
        return self._contains(expr, self.roots)

    def _contains(self, expr: ast.AST, roots: set[str]) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in roots
        if isinstance(expr, ast.Attribute):  # f.name of a NamedTemporaryFile
            return expr.attr == "name" and isinstance(expr.value, ast.Name) and expr.value.id in self.files
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self._contains(expr.left, roots) and _relative_part(expr.right)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self._contains(expr.left, roots) and _appended_part(expr.right)
        if isinstance(expr, ast.JoinedStr) and expr.values:  # f"{root}/out.txt"
            first, rest = expr.values[0], expr.values[1:]
            if not (isinstance(first, ast.FormattedValue) and first.format_spec is None and first.conversion == -1
                    and self._contains(first.value, roots)):
                return False
            if not all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in rest):
                return False
            return not rest or _appended_text("".join(v.value for v in rest))  # type: ignore[attr-defined]
        if isinstance(expr, ast.Call):
            funcs = self.names.resolve(expr.func)
            if funcs & _TEMP_SOURCES:
                return all(_tempfile_problem(expr, source) is None for source in funcs & _TEMP_SOURCES)
            if funcs & _PATH_BUILDERS and expr.args and not expr.keywords:
                return self._contains(expr.args[0], roots) and all(_relative_part(a) for a in expr.args[1:])
            if isinstance(expr.func, ast.Attribute):
                receiver, method = expr.func.value, expr.func.attr
                if method == "joinpath":
                    return self._contains(receiver, roots) and all(_relative_part(a) for a in expr.args)
                if method in ("mktemp", "getbasetemp") and isinstance(receiver, ast.Name):
                    return receiver.id in self.factories and all(_relative_part(a) for a in expr.args)
        return False


def _relative_part(node: ast.AST) -> bool:
    text = _literal_str(node)
    return bool(text) and not text.startswith(("/", "\\", "~")) and _no_parent(text)


def _appended_part(node: ast.AST) -> bool:
    text = _literal_str(node)
    return text is not None and _appended_text(text)


def _appended_text(text: str) -> bool:
    """``root + text`` stays inside root only if text starts a new path component and never climbs out."""
    return text.startswith("/") and _no_parent(text)


def _no_parent(text: str) -> bool:
    return ".." not in re.split(r"[/\\]", text) and "\0" not in text
