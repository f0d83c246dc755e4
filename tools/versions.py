"""Versions of a documentation source: version labels, their order, and ``NAME@SPEC`` selectors.

A source holds either one unversioned set of pages (version ``None``, shown as ``-``) or any number of
versions side by side (``evorag crawl URL --source NAME --version X``). Who asks for a source names it with a
selector:

=================  ==========================================================================================
``NAME``           the source's default version: its latest marker when one is set, else its latest version
``NAME@latest``    the same
``NAME@X``         exactly version ``X``: the same label, else the same PEP 440 version (``2`` = ``2.0``)
``NAME@>=2,<3``    a PEP 440 specifier set (also ``~=2.2``, ``==2.*``, ``!=2.1``): its highest version
``NAME@^2``        a semver caret range (npm): ``^1.2`` = ``>=1.2,<2``; ``^0.3`` = ``>=0.3,<0.4``
``NAME@~2.2``      a semver tilde range (npm): ``~2.2`` = ``>=2.2,<2.3``; ``~2`` = ``>=2,<3``
``NAME@2.x``       a wildcard (also ``2.*``): ``==2.*``
=================  ==========================================================================================

A range picks one version, the highest it contains, as a dependency resolver would: results never mix two
versions of the same page. Order is PEP 440 (a leading ``v`` is allowed: ``v2.1`` = ``2.1``); "latest" is the
highest final release, or the highest pre-release when there is no final one. Labels that are not version
numbers (``stable``, ``main``) sort below every version number; such a label is "latest" only when it is the
source's only version or is marked latest (``evorag sources latest NAME@LABEL``).

A version nobody has indexed is a ``NotFoundError`` naming the versions that exist, never another version.
This module is shared by everything that names versions (crawls, search, sync of a project's dependencies).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from evorag.errors import NotFoundError, UserError

LATEST = "latest"
UNVERSIONED_LABEL = "-"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_RANGE_START = ("<", ">", "=", "!", "~", "^")
_NUMBERS = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_WILDCARD = re.compile(r"^v?(\d+(?:\.\d+)*)\.[x*X]$")
_SCOPE = uuid.UUID("0d7f5c52-3c6e-4d0b-9a53-8a1f4f8c0e21")


@dataclass(frozen=True, slots=True)
class SourceSelector:
    """A parsed ``NAME[@SPEC]``; ``spec`` None means the source's default version (as ``latest``)."""

    name: str
    spec: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.spec}" if self.spec is not None else self.name


def parse_selector(text: str) -> SourceSelector:
    """Split ``NAME@SPEC`` (the name is checked by the caller). An empty spec is a UserError."""
    name, at, spec = (text or "").strip().partition("@")
    if at and not spec.strip():
        raise UserError(f"no version after '@' in {text!r}",
                        hint="write NAME@VERSION, NAME@latest or a range such as NAME@>=2,<3")
    return SourceSelector(name.strip(), spec.strip() if at else None)


def validate_version_label(label: str) -> str:
    """A version label as a crawl records it: 1-64 letters, digits, '.', '_', '+' or '-', not ``latest``."""
    if not _LABEL.match(label or "") or label.lower() == LATEST:
        raise UserError(
            f"invalid version {label!r}",
            hint="use 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit "
            f"('{LATEST}' is reserved: it selects the highest version)",
        )
    return label


def display(version: str | None) -> str:
    """How a version is shown: its label, or ``-`` for an unversioned source."""
    return UNVERSIONED_LABEL if version is None else version


def source_label(name: str, version: str | None) -> str:
    """``name@version``, or ``name`` alone for an unversioned source."""
    return name if version is None else f"{name}@{version}"


def parsed(label: str | None) -> Version | None:
    """The PEP 440 version of a label, or None when it is not a version number."""
    if label is None:
        return None
    try:
        return Version(label)
    except InvalidVersion:
        return None


def sort_key(label: str | None) -> tuple:
    """Ascending order: unversioned, then labels that are not version numbers (by name), then versions (PEP 440)."""
    if label is None:
        return (0, "", Version("0"))
    version = parsed(label)
    return (1, label, Version("0")) if version is None else (2, "", version)


def sort_versions(labels: Iterable[str | None]) -> list[str | None]:
    """Labels in ascending order (see ``sort_key``)."""
    return sorted(labels, key=sort_key)


def latest_version(labels: Sequence[str | None], marker: str | None = None) -> str | None:
    """The version ``NAME`` and ``NAME@latest`` mean (see the module docstring); raises NotFoundError when it is
    ambiguous (several labels, none of them a version number, and no marker) or there is none."""
    if marker is not None and marker in labels:
        return marker
    if len(labels) == 1:
        return labels[0]
    numbered = [label for label in labels if parsed(label) is not None]
    finals = [label for label in numbered if not parsed(label).is_prerelease]  # type: ignore[union-attr]
    if finals or numbered:
        return max(finals or numbered, key=sort_key)
    raise NotFoundError(
        "no latest version: " + (f"none of {', '.join(display(v) for v in sort_versions(labels))} is a version number"
                                 if labels else "nothing is indexed"),
        hint="name a version, or mark one with `evorag sources latest NAME@VERSION`" if labels else None,
    )


def range_specifiers(spec: str) -> SpecifierSet | None:
    """The PEP 440 specifier set a range spec means; None when ``spec`` is an exact label, not a range.
    Raises UserError for a range that does not parse."""
    if spec.startswith("^") or (spec.startswith("~") and not spec.startswith("~=")):
        numbers = _NUMBERS.match(spec[1:].strip())
        if not numbers:
            raise _bad_range(spec, "a caret or tilde range takes a version number such as ^2.1 or ~2.1")
        parts = [int(n) for n in numbers.groups() if n is not None]
        if spec.startswith("^"):
            nonzero = [i for i, part in enumerate(parts) if part != 0]
            bump = nonzero[0] if nonzero else len(parts) - 1
        else:
            bump = min(1, len(parts) - 1) if len(parts) > 1 else 0
        upper = [*parts[:bump], parts[bump] + 1]
        return SpecifierSet(f">={'.'.join(map(str, parts))},<{'.'.join(map(str, upper))}")
    wildcard = _WILDCARD.match(spec)
    if wildcard:
        return SpecifierSet(f"=={wildcard.group(1)}.*")
    if not (spec.startswith(_RANGE_START) or "," in spec or "*" in spec):
        return None
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise _bad_range(spec, "write a PEP 440 range such as >=2,<3 or ~=2.2, or a caret range such as ^2") from None


def _bad_range(spec: str, hint: str) -> UserError:
    return UserError(f"invalid version range {spec!r}", hint=hint)


def resolve_version(name: str, spec: str | None, labels: Sequence[str | None], marker: str | None = None) -> str | None:
    """The one version of source ``name`` that ``spec`` selects among the indexed ``labels``.

    Raises NotFoundError naming the indexed versions when none matches (never falls back to another version),
    UserError for a spec that does not parse.
    """
    if spec is None or spec.lower() == LATEST:
        return latest_version(labels, marker)
    numbered = [label for label in labels if label is not None]
    if not numbered:
        raise NotFoundError(f"source {name!r} has no versions: it was indexed without --version",
                            hint=f"search it as {name} (without @{spec})")
    specifiers = range_specifiers(spec)
    if specifiers is None:
        if spec in numbered:
            return spec
        wanted = parsed(spec)
        equal = [label for label in numbered if wanted is not None and parsed(label) == wanted]
        if equal:
            return max(equal, key=sort_key)
    else:
        candidates = {str(parsed(label)): label for label in numbered if parsed(label) is not None}
        matching = [candidates[v] for v in specifiers.filter(candidates)]
        if matching:
            return max(matching, key=sort_key)
    raise NotFoundError(f"source {name!r} has no version matching {spec!r}",
                        hint=f"indexed versions of {name}: {describe_versions(labels, marker)}; "
                        f"ask for one of them, {name}@latest, or crawl that version with --version")


def describe_versions(labels: Sequence[str | None], marker: str | None = None) -> str:
    """``1.0, 2.0 (latest 2.0)``: the versions in ascending order and what ``latest`` means now."""
    ordered = sort_versions(labels)
    text = ", ".join(display(label) for label in ordered) or "none"
    try:
        latest = latest_version(ordered, marker)
    except NotFoundError:
        return text
    return f"{text} (latest {display(latest)})" if len(ordered) > 1 else text


def scoped_chunk_id(chunk_id: str, source: str, version: str | None) -> str:
    """The id of a chunk of one source (and version): the same page indexed into two sources, or as two versions
    (one URL serving v1, later v2), gives two sets of chunks instead of one overwriting the other.

    Indexes written before ids were scoped for unversioned sources stay valid: pages are removed and replaced by
    (url, source, version), never by id, so old points are cleaned up when their page changes."""
    scope = f"{chunk_id}\n{source}" if version is None else f"{chunk_id}\n{source}\n{version}"
    return str(uuid.uuid5(_SCOPE, scope))
