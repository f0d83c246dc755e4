"""Compatibility of a redeployed tool with the deployed one, its next semantic version, and a migration guide.

A tool's interface is the JSON schema of its parameters and of its return value (both derived from the AST by
``evorag.tools.code_checks``). A redeploy is classified from the callers' side:

* **breaking** (major bump): a parameter removed or renamed, a new required parameter, an optional parameter made
  required, a parameter type that accepts less than before (narrowed), or any change of the return type;
* **additive** (minor bump): a new optional parameter, a required parameter made optional, a parameter type that
  accepts more than before (widened), a changed default;
* **none** (patch bump): the interface is the same (the code, the docstring or the tests changed).

Only a schema change this module can tell is a widening counts as additive: a change it cannot compare (a
different structure) counts as breaking. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["breaking", "additive", "none"]
INITIAL_VERSION = "1.0.0"
_SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
_ORDER = {"none": 0, "additive": 1, "breaking": 2}


@dataclass(frozen=True, slots=True)
class ToolInterface:
    """What a caller of a tool depends on: the parameters' JSON schema and the return value's."""

    parameters: dict[str, Any]
    returns: dict[str, Any] = field(default_factory=dict)
    return_annotation: str = ""  # compared when a return schema is {} (Any, or a type a schema cannot express)

    @property
    def properties(self) -> dict[str, dict]:
        props = self.parameters.get("properties") if isinstance(self.parameters, dict) else None
        return props if isinstance(props, dict) else {}

    @property
    def required(self) -> list[str]:
        required = self.parameters.get("required") if isinstance(self.parameters, dict) else None
        return [name for name in required or [] if name in self.properties]


@dataclass(frozen=True, slots=True)
class Change:
    level: Level
    text: str  # one line, e.g. "parameter 'text' was renamed to 'content'"

    def to_dict(self) -> dict:
        return {"level": self.level, "text": self.text}


@dataclass(frozen=True, slots=True)
class Compatibility:
    """The verdict on a redeploy: the highest level of its changes, and each change."""

    level: Level
    changes: tuple[Change, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (old, new) pairs read as renames

    @property
    def breaking(self) -> bool:
        return self.level == "breaking"

    def reasons(self, level: Level | None = None) -> list[str]:
        return [c.text for c in self.changes if level is None or c.level == level]

    def to_dict(self) -> dict:
        return {"level": self.level, "changes": [c.to_dict() for c in self.changes],
                "renamed": [list(pair) for pair in self.renamed]}


def parse_version(text: str | None) -> tuple[int, int, int]:
    """``MAJOR.MINOR.PATCH`` as numbers; anything else (a manifest from before versions) reads as 1.0.0."""
    match = _SEMVER.match(str(text or ""))
    if not match:
        match = _SEMVER.match(INITIAL_VERSION)
    assert match is not None
    return int(match[1]), int(match[2]), int(match[3])


def next_version(current: str | None, level: Level) -> str:
    """The version after ``current`` for a change of ``level``: major, minor or patch bump."""
    major, minor, patch = parse_version(current)
    if level == "breaking":
        return f"{major + 1}.0.0"
    if level == "additive":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def major_of(version: str | None) -> int:
    return parse_version(version)[0]


def compare(old: ToolInterface, new: ToolInterface) -> Compatibility:
    """Classify the change from ``old`` to ``new`` as a caller of ``old`` sees it."""
    changes: list[Change] = []
    old_props, new_props = old.properties, new.properties
    old_required, new_required = set(old.required), set(new.required)
    removed = [name for name in old_props if name not in new_props]
    added = [name for name in new_props if name not in old_props]
    renamed = _renames(removed, added, old_props, new_props)
    for old_name, new_name in renamed:
        changes.append(Change("breaking", f"parameter '{old_name}' was renamed to '{new_name}'"))
    paired_old = {pair[0] for pair in renamed}
    paired_new = {pair[1] for pair in renamed}
    for name in removed:
        if name not in paired_old:
            changes.append(Change("breaking", f"parameter '{name}' was removed"))
    for name in added:
        if name in new_required and name not in paired_new:
            changes.append(Change("breaking", f"new required parameter '{name}' ({describe(new_props[name])})"))
        elif name not in paired_new:
            changes.append(Change("additive", f"new optional parameter '{name}' ({describe(new_props[name])}, "
                                              f"default {json.dumps(new_props[name].get('default'))})"))
    for name in old_props:
        if name not in new_props:
            continue
        before, after = old_props[name], new_props[name]
        if name in new_required and name not in old_required:
            changes.append(Change("breaking", f"parameter '{name}' is now required"))
        elif name in old_required and name not in new_required:
            changes.append(Change("additive", f"parameter '{name}' is now optional"))
        change = _type_change(_without_meta(before), _without_meta(after))
        if change == "narrowed":
            changes.append(Change("breaking", f"parameter '{name}' was narrowed from {describe(before)} to "
                                              f"{describe(after)}"))
        elif change == "widened":
            changes.append(Change("additive", f"parameter '{name}' was widened from {describe(before)} to "
                                              f"{describe(after)}"))
        if "default" in before and "default" in after and before["default"] != after["default"]:
            changes.append(Change("additive", f"the default of '{name}' changed from "
                                              f"{json.dumps(before['default'])} to {json.dumps(after['default'])}"))
    if _return_differs(old, new):
        changes.append(Change("breaking", f"the return type changed from {_describe_return(old)} to "
                                          f"{_describe_return(new)}"))
    level: Level = max((c.level for c in changes), key=_ORDER.__getitem__, default="none")
    return Compatibility(level, tuple(changes), tuple(renamed))


def describe(schema: object) -> str:
    """A JSON schema of ``code_checks``' subset as a short Python-like type: ``str``, ``list[int]``, ``int | None``."""
    if not isinstance(schema, dict) or not _without_meta(schema):
        return "any"
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(describe(member) for member in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(describe({"type": k}) for k in kind)
    if kind == "array":
        if "prefixItems" in schema:
            return "tuple[" + ", ".join(describe(item) for item in schema["prefixItems"]) + "]"
        return f"list[{describe(schema['items'])}]" if "items" in schema else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"dict[str, {describe(extra)}]" if isinstance(extra, dict) else "dict"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}.get(
        str(kind), str(kind))


def _describe_return(interface: ToolInterface) -> str:
    if _without_meta(interface.returns):
        return describe(interface.returns)
    return interface.return_annotation or "any"


def _return_differs(old: ToolInterface, new: ToolInterface) -> bool:
    before, after = _without_meta(old.returns), _without_meta(new.returns)
    if before or after:
        return _canonical(before) != _canonical(after)
    return (old.return_annotation or "").replace(" ", "") != (new.return_annotation or "").replace(" ", "")


def _renames(removed: list[str], added: list[str], old_props: dict, new_props: dict) -> list[tuple[str, str]]:
    """Removed and added parameters of the same type, paired in order: read as renames (both are breaking; a
    rename gets its own line in the migration guide)."""
    pairs: list[tuple[str, str]] = []
    free = list(added)
    for name in removed:
        match = next((cand for cand in free if _canonical(_without_meta(old_props[name]), default=False)
                      == _canonical(_without_meta(new_props[cand]), default=False)), None)
        if match is not None:
            pairs.append((name, match))
            free.remove(match)
    return pairs


def _without_meta(schema: object) -> dict:
    """The schema without what does not change which values it accepts (descriptions, titles)."""
    if not isinstance(schema, dict):
        return {}
    return {k: v for k, v in schema.items() if k not in ("description", "title")}


def _canonical(schema: dict, *, default: bool = True) -> str:
    kept = schema if default else {k: v for k, v in schema.items() if k != "default"}
    return json.dumps(kept, sort_keys=True)


# --- which values a schema accepts -----------------------------------------------------------------------


def _type_change(before: dict, after: dict) -> Literal["same", "narrowed", "widened"]:
    """How the values ``after`` accepts compare with those ``before`` accepts (a default is no type)."""
    before = {k: v for k, v in before.items() if k != "default"}
    after = {k: v for k, v in after.items() if k != "default"}
    if _canonical(before) == _canonical(after):
        return "same"
    if _accepts_all(after, before):
        return "widened"
    return "narrowed"  # accepts less, or something the comparison cannot prove is more: a caller may break


def _members(schema: dict) -> list[dict]:
    """A schema as a union of simple members (one type each, or an enum)."""
    if "anyOf" in schema:
        return [m for member in schema["anyOf"] for m in _members(_without_meta(member))]
    kind = schema.get("type")
    if isinstance(kind, list):
        return [{**schema, "type": k} for k in kind]
    return [schema]


def _accepts_all(wide: dict, narrow: dict) -> bool:
    """True when every value ``narrow`` accepts is accepted by ``wide`` (provably, for code_checks' subset)."""
    if not wide:
        return True
    if not narrow:
        return False
    return all(any(_member_covers(w, n) for w in _members(wide)) for n in _members(narrow))


def _member_covers(wide: dict, narrow: dict) -> bool:
    if not wide:
        return True
    if "enum" in wide:
        return "enum" in narrow and all(value in wide["enum"] for value in narrow["enum"])
    wide_type, narrow_type = wide.get("type"), narrow.get("type")
    if "enum" in narrow:
        return all(_value_has_type(value, wide_type) for value in narrow["enum"]) and _no_structure(wide)
    if wide_type == "number" and narrow_type == "integer":
        return True
    if wide_type != narrow_type:
        return False
    if wide_type == "array":
        if "prefixItems" in wide or "prefixItems" in narrow:
            return _canonical(wide) == _canonical(narrow)
        return _accepts_all(_without_meta(wide.get("items", {})), _without_meta(narrow.get("items", {})))
    if wide_type == "object":
        return _accepts_all(_object_values(wide), _object_values(narrow))
    return True


def _object_values(schema: dict) -> dict:
    extra = schema.get("additionalProperties")
    return _without_meta(extra) if isinstance(extra, dict) else {}


def _no_structure(schema: dict) -> bool:
    return not any(key in schema for key in ("items", "prefixItems", "additionalProperties"))


def _value_has_type(value: object, kind: object) -> bool:
    checks = {"string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "null": lambda v: v is None}
    check = checks.get(str(kind))
    return bool(check and check(value))


# --- the migration guide ---------------------------------------------------------------------------------


def example_call(name: str, interface: ToolInterface) -> str:
    """A call of the tool with a placeholder for each required parameter, e.g. ``word_count(text=<str>)``."""
    args = ", ".join(f"{param}=<{describe(interface.properties[param])}>" for param in interface.required)
    return f"{name}({args})"


def migration_guide(name: str, old_version: str, new_version: str, old: ToolInterface, new: ToolInterface,
                    verdict: Compatibility, *, pinned_name: str | None = None) -> str:
    """Markdown for the tool's docs and changelog: what changed, and the old call next to the new one.

    Built from parameter names (identifiers the code gate checked) and types only: no author text goes in.
    """
    lines = [f"## Migrating `{name}` from {old_version} to {new_version}", "",
             f"This is a **{verdict.level}** change.", "", "What changed:", ""]
    lines += [f"- {'BREAKING: ' if c.level == 'breaking' else ''}{c.text}" for c in verdict.changes] or ["- nothing"]
    lines += ["", "How to call it now:", "", "```", f"# {old_version}", example_call(name, old),
              f"# {new_version}", example_call(name, new), "```", ""]
    for old_name, new_name in verdict.renamed:
        lines.append(f"- pass `{new_name}` where you passed `{old_name}`")
    if verdict.renamed:
        lines.append("")
    if pinned_name:
        lines += [(f"Callers that cannot change yet can call the previous major version as `{pinned_name}` "
                  f"(`evorag tools call {name}@{major_of(old_version)}`) until a person retires it with "
                  f"`evorag tools retire {name}@{major_of(old_version)}`."), ""]
    return "\n".join(lines)
