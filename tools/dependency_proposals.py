"""Answering a dependency conflict with a proposal: the nearest versions that satisfy both sides.

A tool's requirement can collide with two things that hold still: a distribution installed in evorag's own
environment (the sandbox shares it; replacing it could break evorag), and a version another deployed tool
has locked (the image installs one version of each distribution for all tools). The gate refuses the
candidate either way; this module says what would work, in one line the generator's prompt and the person
reading the CLI can both use:

- a requirement that excludes the installed version: that version (the one the environment has), and which
  releases would satisfy both the requirement and evorag's own declared range, if any;
- a requirement that excludes another tool's locked version: that version, and the releases that satisfy
  both tools' requirements (pip's resolver in a dry run over both tools' requirements);
- a resolution that fails through a dependency of a dependency: the nearest release of the requested
  package, tried one bound at a time (``name==version``, nearest to the requested range first) with pip's
  resolver in a dry run bound by the same constraints.
Every pip call is a dry run with ``--only-binary=:all:``: nothing is installed and nothing is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# pip dry runs one proposal may cost (each ~0.5 s against a local index, a few seconds against PyPI).
MAX_TRIES = 4
MAX_PROPOSAL_CHARS = 600

Resolve = Callable[[list[str], list[str]], tuple[list[dict[str, Any]], list[str]]]


def installed_conflict(req: Requirement, name: str, version: str, *, declared: SpecifierSet | None,
                       versions: list[str]) -> str:
    """A requirement that excludes the installed ``name`` ``version``."""
    both = _satisfying(versions, req.specifier, declared)
    own = f" (evorag itself requires {name}{declared})" if declared is not None and str(declared) else ""
    text = (f"require {name}=={version} (or a range holding it, e.g. {name}>={version}): "
            f"{version} is installed in evorag's environment, which the sandbox shares{own}")
    if both:
        text += (f"; releases {', '.join(both[:4])} would satisfy both {str(req)!r} and evorag's range, but "
                 "moving evorag's environment there is a person's decision (pip install, then `evorag doctor`)")
    elif versions:
        text += f"; no release satisfies both {str(req)!r} and evorag's environment"
    return _cap(text)


def locked_conflict(req: Requirement, version: str, tool: str, *, both: list[dict[str, Any]] | None) -> str:
    """A requirement that excludes ``version``, which deployed ``tool`` has locked."""
    name = req.name
    text = (f"require {name}=={version}, the version tool {tool} has locked (the image installs one "
            f"version of {name} for every tool)")
    if both:
        pins = ", ".join(f"{item['name']} {item['version']}" for item in both)
        text += (f"; or move {tool} to {pins}, which satisfies both {tool}'s requirements and {str(req)!r} "
                 f"(redeploy {tool} so that its tests run against them)")
    return _cap(text)


def nearest_release(requested: list[Requirement], others: list[str], resolve: Resolve,
                    versions_of: Callable[[str], list[str]]) -> str | None:
    """The nearest release of a requested package with which the whole set resolves, or None.

    ``resolve(requirements, extra_constraints)`` is a dry run bound by the gate's constraints; ``others`` are
    the requirement lines that stay as they are."""
    tries = 0
    for req in requested:
        candidates = nearest_first(versions_of(req.name), req.specifier)
        rest = [line for line in others if canonicalize_name(Requirement(line).name) != canonicalize_name(req.name)]
        for version in candidates:
            if tries >= MAX_TRIES:
                return None
            tries += 1
            resolved, problems = resolve([*rest, f"{req.name}=={version}"], [])
            if not problems:
                pins = ", ".join(f"{item['name']} {item['version']}" for item in resolved) or f"{req.name} {version}"
                return _cap(f"require {req.name}=={version}, the nearest release to {str(req)!r} that "
                            f"resolves with evorag's environment and the deployed tools' locks (it would install "
                            f"{pins})")
    return None


def nearest_first(versions: list[str], specifier: SpecifierSet) -> list[str]:
    """The releases outside ``specifier``, nearest to it first (by position among all releases; ties: the
    newer first). With no release inside it, newest first. Pre-releases are left out."""
    parsed = []
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            parsed.append(version)
    parsed.sort()
    inside = [index for index, version in enumerate(parsed) if specifier.contains(version)]
    outside = [(index, version) for index, version in enumerate(parsed) if not specifier.contains(version)]
    if not inside:
        return [str(version) for _, version in sorted(outside, key=lambda pair: pair[1], reverse=True)]
    distance = {index: min(abs(index - other) for other in inside) for index, _ in outside}
    ordered = sorted(outside, key=lambda pair: (distance[pair[0]], -pair[0]))
    return [str(version) for _, version in ordered]


def declared_specifier(declared: list[Requirement], name: str) -> SpecifierSet | None:
    key = canonicalize_name(name)
    for req in declared:
        if canonicalize_name(req.name) == key:
            return req.specifier
    return None


def _satisfying(versions: list[str], *specifiers: SpecifierSet | None) -> list[str]:
    found = []
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if not version.is_prerelease and all(s is None or s.contains(version) for s in specifiers):
            found.append(text)
    return found


def _cap(text: str) -> str:
    return text if len(text) <= MAX_PROPOSAL_CHARS else text[: MAX_PROPOSAL_CHARS - 1] + "…"
