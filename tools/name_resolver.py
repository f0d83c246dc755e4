"""Which dotted paths a name of a Python syntax tree may stand for ("subprocess.run"), without running it.

References are resolved through imports, aliases (assignment chains, walrus, for targets, default
arguments), ``getattr`` with a literal name, ``sys.modules[...]``, ``__import__`` and
``importlib.import_module`` with literal names, and the re-exports of a candidate's other modules.
Resolution is flow- and scope-insensitive (a name bound to ``os.system`` anywhere is that everywhere),
so it errs towards reporting. Used by the risk analyser (``evorag.tools.risk_scan``) and by the schema
reader of ``evorag.tools.code_checks``.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from collections.abc import Mapping

DUNDER = re.compile(r"__[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*__")
_BUILTIN_NAMES = frozenset(dir(builtins))


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
            key = literal_str(node.slice)
            if key is None:
                return set()
            bases = self.resolve(node.value)
            return {key if base == "sys.modules" else f"{base}.{key}" for base in bases}
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            first = literal_str(node.args[0]) if node.args else None
            if "builtins.getattr" in func and len(node.args) >= 2 and literal_str(node.args[1]):
                return {f"{path}.{literal_str(node.args[1])}" for path in self.resolve(node.args[0])}
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


def binding_values(tree: ast.AST, *, skip_args: set[int] = frozenset(),  # type: ignore[assignment]
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


def defined_names(tree: ast.AST) -> set[str]:
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
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and call_name(node.func) in (
            "namedtuple", "NamedTuple", "Enum", "IntEnum", "StrEnum"):
            fields = node.args[1]
            texts = [fields] if isinstance(fields, ast.Constant) else getattr(fields, "elts", [])
            for text in texts:
                if isinstance(text, ast.Tuple) and text.elts:
                    text = text.elts[0]
                value = literal_str(text)
                if value:
                    names |= set(re.findall(r"[A-Za-z_]\w*", value))
    return {name for name in names if not DUNDER.fullmatch(name)}


def call_name(func: ast.AST) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None
