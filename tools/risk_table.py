"""The rules table as the risk analyser reads it: which rule a dotted path falls under.

Only standard-library modules named in the table are imported on the host, to see their re-exports
(``shutil.os`` is ``os``); their attributes are read from the module's ``__dict__``, so no module hook runs.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from dataclasses import dataclass

from evorag.tools.name_resolver import DUNDER
from evorag.tools.risk_rules import GATEWAY_METHODS, PURE_METHODS_EXTRA, PURE_TYPES, RULES, RULES_BY_ID, Rule

_PATH_CLASSES = frozenset({"pathlib.Path", "pathlib.PosixPath"})


class RuleTable:
    """The rules that apply to one kind of file (tests or not), longest name first."""


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


TABLES = {tests: RuleTable(tests) for tests in (False, True)}
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
        if module is None or DUNDER.fullmatch(attr):
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
class Verdict:
    """The rule a reference falls under, and the reference as shown in the reason."""

    rule: Rule
    display: str


def rate_path(path: str, *, tests: bool, candidate_modules: frozenset[str] = frozenset()) -> Verdict | None:
    """The rule a reference to ``path`` falls under, or None when it is pure (LOW)."""
    if path.split(".")[0] in candidate_modules:
        return None
    canon, _ = canonical(path)
    display = canon.removeprefix("builtins.")
    table = TABLES[tests]
    found = table.lookup(canon)
    if found is None:
        root = canon.split(".")[0]
        rule_id = "unlisted-name" if root in table.roots or root == "builtins" else "unknown-module"
        return Verdict(RULES_BY_ID[rule_id], display)
    prefix, rule = found
    if rule.risk == "LOW" and prefix in _PATH_CLASSES and canon.split(".")[-1] in file_methods():
        return Verdict(RULES_BY_ID["files"], display)  # Path.write_text(p, ...), Path.cwd()
    if rule.risk != "LOW":
        return Verdict(rule, display)
    rest = canon[len(prefix.rstrip("*")):].split(".")
    if any(part.startswith("_") and not DUNDER.fullmatch(part) for part in rest):
        return Verdict(RULES_BY_ID["private-name"], display)
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
