"""Which expressions of a file are provably paths inside a fresh temporary directory.

File access is MEDIUM risk only when every path it touches is such a path; anything the analyser cannot
prove is HIGH.
"""

from __future__ import annotations

import ast
import re

from evorag.tools.name_resolver import NameResolver, binding_values, literal_str
from evorag.tools.risk_rules import PURE_FIXTURES
from evorag.tools.risk_table import canonical

_TEMP_SOURCES = frozenset({
    "tempfile.mkdtemp", "tempfile.mkstemp", "tempfile.TemporaryDirectory", "tempfile.NamedTemporaryFile",
    "tempfile.TemporaryFile", "tempfile.SpooledTemporaryFile",
})
_TEMP_FILE_OBJECTS = frozenset({"tempfile.NamedTemporaryFile", "tempfile.TemporaryFile", "tempfile.SpooledTemporaryFile"})
# Calls that keep a path inside the directory it starts from when the other parts are literal relative names.
_PATH_BUILDERS = frozenset({"builtins.str", "os.fspath", "os.path.join", "os.path.normpath", "pathlib.Path",
                            "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"})
_TEMPFILE_POSITIONS = {  # positional indexes of (suffix, prefix, dir)
    "tempfile.mkdtemp": (0, 1, 2), "tempfile.mkstemp": (0, 1, 2), "tempfile.TemporaryDirectory": (0, 1, 2),
    "tempfile.NamedTemporaryFile": (4, 5, 6), "tempfile.TemporaryFile": (4, 5, 6),
    "tempfile.SpooledTemporaryFile": (5, 6, 7),
}


def tempfile_problem(call: ast.Call, func: str) -> str | None:
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


class TempPaths:
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
        bound = binding_values(tree, skip_args=fixture_args, unpacks=self._unpacks_temp_source)
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
                return all(tempfile_problem(expr, source) is None for source in funcs & _TEMP_SOURCES)
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
    text = literal_str(node)
    return bool(text) and not text.startswith(("/", "\\", "~")) and _no_parent(text)


def _appended_part(node: ast.AST) -> bool:
    text = literal_str(node)
    return text is not None and _appended_text(text)


def _appended_text(text: str) -> bool:
    """``root + text`` stays inside root only if text starts a new path component and never climbs out."""
    return text.startswith("/") and _no_parent(text)


def _no_parent(text: str) -> bool:
    return ".." not in re.split(r"[/\\]", text) and "\0" not in text
