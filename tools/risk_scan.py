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

The parts: ``name_resolver`` (what a name stands for), ``risk_table`` (which rule a dotted path falls
under), ``risk_temp_paths`` (which paths are provably inside a fresh temporary directory); this module
walks each file and reports.
"""

from __future__ import annotations

import ast
import copy
import io
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evorag.tools.name_resolver import (
    DUNDER,
    NameResolver,
    binding_values,
    call_name,
    defined_names,
    literal_str,
)
from evorag.tools.python_ast import parse_python
from evorag.tools.risk_rules import (
    GATEWAY_METHODS,
    HARMLESS_DUNDERS,
    PURE_FIXTURES,
    RULES_BY_ID,
    RUNNER_FIXTURES,
    Risk,
    hidden_characters,
    instruction_like,
)
from evorag.tools.risk_table import (
    TABLES,
    Verdict,
    canonical,
    file_methods,
    interpreter_internals,
    pure_methods,
    rate_path,
)
from evorag.tools.risk_temp_paths import TempPaths, tempfile_problem

# File functions whose second argument is a path too (a destination or a link target).
_TWO_PATHS = frozenset({"os.rename", "os.renames", "os.replace", "os.link", "os.symlink", "shutil.copy",
                        "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.copymode", "shutil.copystat",
                        "shutil.move"})
_PATH_TARGET_METHODS = frozenset({"rename", "replace", "symlink_to", "hardlink_to", "link_to"})
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
    trees = {name: _with_string_annotations(parse_python(text, filename=name)) for name, text in sources.items()}
    modules = frozenset(name.removesuffix(".py") for name in trees)
    resolvers = {name: NameResolver(tree, candidate_modules=modules) for name, tree in trees.items()}
    # What each candidate module binds, so that ``tool.os`` in a test file is ``os``.
    exports = {name.removesuffix(".py"): resolver.aliases for name, resolver in resolvers.items()}
    local_names = frozenset().union(*(defined_names(tree) for tree in trees.values()))
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
    return _FileScan(filename, ast.unparse(tree), tree, resolver, defined_names(tree)).run()


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
            text = literal_str(node)
            if not text:
                continue
            try:
                parsed = parse_python(text.strip(), mode="eval").body
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


class _FileScan:
    def __init__(self, filename: str, source: str, tree: ast.AST, names: NameResolver,
                 local_names: Iterable[str]) -> None:
        self.filename = filename
        self.source = source
        self.tree = tree
        self.names = names
        self.tests = filename.startswith("test_")
        self.table = TABLES[self.tests]
        self.local_names = frozenset(local_names)
        self.findings: dict[tuple[str, int, str], Finding] = {}
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        self.handled: set[int] = set()  # references reported by their call's own check
        self.doc_strings = {id(node.value) for node in ast.walk(tree)
                            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
        self.fixture_params, self.overridden = self._fixture_parameters()
        self.temp = TempPaths(tree, names, self.fixture_params)
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

    def _rate(self, path: str) -> Verdict | None:
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
        if DUNDER.fullmatch(name) and name not in HARMLESS_DUNDERS:
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
        if DUNDER.fullmatch(attr):
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
            name = literal_str(call.args[1]) if len(call.args) >= 2 else None
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
                problem = tempfile_problem(call, func)
                if problem:
                    self.add("files", line, f"{verdict.display} {problem}")
                else:
                    self.add("temp-files", line, verdict.display)

    def _file_call(self, call: ast.Call, func: str, verdict: Verdict) -> None:
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
        for name, values in binding_values(self.tree).items():
            texts = {literal_str(value) for value in values}
            if len(texts) == 1 and None not in texts:
                constants[name] = texts.pop()
        return constants

    # --- text -----------------------------------------------------------------------------------------

    def _check_constant(self, node: ast.Constant) -> None:
        text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
        if id(node) not in self.doc_strings:
            for dunder in DUNDER.findall(text):
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
    return call_name(target) == "fixture"


def _parametrized_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names: set[str] = set()
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and call_name(decorator.func) == "parametrize" and decorator.args:
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


