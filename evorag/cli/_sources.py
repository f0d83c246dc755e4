"""Source versions and sharing: what changed in a source, which version is latest, export and import."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape as esc

from evorag.cli._app import JsonFlag, out, print_json, service, sources_app
from evorag.service import SourceChanges, display_version, source_label

PAGES_SHOWN = 50
CHANGE_MARKS = {"added": "+", "changed": "~", "removed": "-"}


def _when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds") if timestamp else "-"


@sources_app.command("changes")
def sources_changes(
    selector: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="A source (every version), or one "
                                            "version: NAME@X, NAME@latest or a range such as NAME@>=2,<3.")],
    since: Annotated[str | None, typer.Option(help="Only crawls that ended since then: a date (2024-05-01), a "
                                              "time (2024-05-01T12:00Z) or a span back from now (7d, 12h).")] = None,
    last: Annotated[int, typer.Option(min=1, max=100, help="At most this many reports, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """What the crawls of a source changed: pages added, removed and changed, with the changed sections and a
    short diff of each."""
    with service() as rag:
        changes = rag.source_changes(selector, since=since, limit=last)
    if as_json:
        print_json(changes.to_dict())
        return
    _print_changes(changes)


def _print_changes(changes: SourceChanges) -> None:
    if not changes.reports:
        out.print(f"No changes recorded for {esc(changes.source)}" + (f" since {_when(changes.since)}"
                                                                        if changes.since else "") + ".")
        return
    for report in changes.reports:
        state = f"crawl finished {_when(report.finished_at)}" if report.finished_at else (
            f"crawl started {_when(report.started_at)}, not finished")
        out.print(f"[bold]{esc(source_label(report.source, report.version))}[/] — {state}: "
                  f"{report.count('added')} added, {report.count('changed')} changed, "
                  f"{report.count('removed')} removed", highlight=False)
        for page in report.pages[:PAGES_SHOWN]:
            out.print(f"  {CHANGE_MARKS[page['change']]} {page['url']}  {page['title']}", highlight=False,
                      markup=False)
            sections = page.get("sections")
            if page["change"] == "changed" and sections is None:
                out.print("      (the previous text was not in the index: sections unknown)", markup=False)
            for section in sections or []:
                out.print(f"      {section['change']}: {' > '.join(section['path'])}", highlight=False, markup=False)
                for line in (section.get("diff") or "").splitlines():
                    out.print(f"        {line}", highlight=False, markup=False)
            if page.get("sections_omitted"):
                out.print(f"      ... and {page['sections_omitted']} more sections", markup=False)
        hidden = len(report.pages) - PAGES_SHOWN + sum(report.omitted.values())
        if hidden > 0:
            out.print(f"  ... and {hidden} more pages (--json lists those the report kept)", markup=False)


@sources_app.command("latest")
def sources_latest(
    selector: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="NAME@VERSION marks that version as "
                                            "latest; NAME alone clears the mark (the highest version is latest).")],
    as_json: JsonFlag = False,
) -> None:
    """Choose the version NAME and NAME@latest mean (e.g. the stable release while a newer one is in beta)."""
    with service() as rag:
        record = rag.mark_latest(selector)
    if as_json:
        print_json({"source": record.name, "latest": record.latest_version, "marked": record.latest is not None})
        return
    how = "marked" if record.latest is not None else "highest version"
    out.print(f"{record.name}@latest is {display_version(record.latest_version)} ({how})", markup=False)


@sources_app.command("export")
def sources_export(
    selector: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="The source (every version), or one "
                                            "version of it.")],
    file: Annotated[Path, typer.Argument(help="The archive to write (a new .tar.gz file).")],
    as_json: JsonFlag = False,
) -> None:
    """Write a source with its chunks, vectors, catalog entries and versions to one file, for `evorag sources
    import` on another machine (the same embedding model is needed there)."""
    with service() as rag:
        result = rag.export_source(selector, file)
    if as_json:
        print_json(result.to_dict())
        return
    versions = ", ".join(display_version(v) for v in result.versions)
    out.print(f"exported {result.source} ({versions}): {result.pages} pages, {result.chunks} chunks, "
              f"{result.bytes} bytes to {result.path}", highlight=False, markup=False)


@sources_app.command("import")
def sources_import(
    file: Annotated[Path, typer.Argument(help="An archive written by `evorag sources export`.")],
    replace: Annotated[bool, typer.Option("--replace", help="Replace the versions (or the source) it already "
                                          "holds under that name (needs the approver role).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a source from an archive, after checking all of it (format, embedding model and dimension, BM25
    encoder, sizes, every member's sha256); a bad archive changes nothing."""
    with service() as rag:
        result = rag.import_source(file, replace=replace)
    if as_json:
        print_json(result.to_dict())
        return
    versions = ", ".join(display_version(v) for v in result.versions)
    replaced = f", replacing {', '.join(display_version(v) for v in result.replaced)}" if result.replaced else ""
    out.print(f"imported {result.source} ({versions}): {result.pages} pages, {result.chunks} chunks{replaced}",
              highlight=False, markup=False)
