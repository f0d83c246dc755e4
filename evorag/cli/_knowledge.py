"""Knowledge commands: crawl, search, ask, sources, and the offline demo."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, SourceOpt, app, err, out, print_json, service, sources_app, spinner
from evorag.demo import DEMO_QUESTIONS, DEMO_SOURCE, serve_demo_site
from evorag.progress import crawl_progress
from evorag.service import CrawlRequest, display_version, source_label
from evorag.terminal import strip_control

if TYPE_CHECKING:  # the crawler and the answerer load when a command uses them, not at every start (issue 14)
    from evorag.service import Answer, CrawlReport

QUALITY_KEYS = ("grounding", "rougeL", "ndcg", "code_quality", "overall")


@app.command()
def crawl(
    url: Annotated[str, typer.Argument(help="Start URL of the documentation site.")],
    source: Annotated[str | None, typer.Option(help="Name of the source (default: from the host).")] = None,
    max_pages: Annotated[int | None, typer.Option(min=1, help="Stop after this many pages (default: "
                                                               "EVORAG_MAX_PAGES).")] = None,
    max_depth: Annotated[int | None, typer.Option(min=0, help="Follow links this deep (default: "
                                                              "EVORAG_MAX_DEPTH).")] = None,
    include: Annotated[list[str], typer.Option(help="Only URLs matching this glob (repeatable).")] = [],  # noqa: B006
    exclude: Annotated[list[str], typer.Option(help="Skip URLs matching this glob (repeatable).")] = [],  # noqa: B006
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow loopback and private addresses.")
    ] = False,
    browser: Annotated[bool, typer.Option("--browser", help="Render JavaScript with the system Chromium.")] = False,
    selector: Annotated[str | None, typer.Option(help="CSS selector of the main content (per source).")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", help="Index these docs as this version of the source, next to its other versions "
        "(search it as NAME@VERSION).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Crawl a documentation site and index it; re-running updates only what changed (per version)."""
    request = CrawlRequest(url=url, source=source, max_pages=max_pages, max_depth=max_depth, include=include,
                           exclude=exclude, allow_private=allow_private or None, browser=browser, selector=selector,
                           version=version)
    with service() as rag, crawl_progress(err, enabled=not as_json) as on_progress:
        report = rag.crawl(request, on_progress=on_progress)
    _print_report(report, as_json)


@app.command("add-folder")
def add_folder(
    path: Annotated[Path, typer.Argument(help="Folder of Markdown, reStructuredText, HTML, notebooks, text and PDF "
                                              "files.")],
    source: Annotated[str | None, typer.Option(help="Name of the source (default: the folder's name).")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", help="Index the folder as this version of the source (search it as NAME@VERSION).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Index a local folder of documents; re-running indexes only changed files and drops deleted ones.

    Results cite file:// URLs (a PDF page as FILE#page=N). Hidden folders are skipped and symbolic links to
    outside the folder are not followed."""
    with service() as rag, crawl_progress(err, enabled=not as_json) as on_progress:
        report = rag.add_folder(path, source=source, version=version, on_progress=on_progress)
    _print_report(report, as_json)


@app.command("add-git")
def add_git(
    repo: Annotated[str, typer.Argument(help="Repository: an https URL or the path of a local repository.")],
    ref: Annotated[str | None, typer.Option(help="Branch or tag (default: the default branch).")] = None,
    source: Annotated[str | None, typer.Option(help="Name of the source (default: the repository's "
                                                    "name).")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", help="Index it as this version of the source (search it as NAME@VERSION).")] = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow a repository URL on a loopback or private address.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index a git repository at a branch or tag: its README, docs/ folder and Python docstrings (read, never
    run). A shallow clone into a temporary folder; re-running indexes only what changed."""
    with service() as rag, crawl_progress(err, enabled=not as_json) as on_progress:
        report = rag.add_git(repo, ref=ref, source=source, version=version, allow_private=allow_private or None,
                             on_progress=on_progress)
    _print_report(report, as_json)


@app.command()
def sync(
    path: Annotated[Path, typer.Argument(help="Project folder (pyproject.toml, requirements*.txt, uv.lock, "
                                              "poetry.lock, package.json).")] = Path("."),
    docs_map: Annotated[Path | None, typer.Option(
        "--map", help="A docs map (TOML) read after EVORAG_HOME/docs_map.toml: package URLs, host rules.")] = None,
    max_pages: Annotated[int | None, typer.Option(min=1, help="Pages per dependency (default: "
                                                               "EVORAG_MAX_PAGES).")] = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow docs URLs on loopback and private addresses.")
    ] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Re-crawl versions already indexed.")] = False,
    registry: Annotated[str | None, typer.Option(
        help="PyPI-style JSON API asked for the docs URL of a release found nowhere else (default: PyPI's).")
    ] = None,
    no_registry: Annotated[bool, typer.Option("--no-registry", help="Never ask the package registry.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index the docs of exactly the dependency versions a project uses (search them as NAME@VERSION); lists
    what could not be resolved and why."""

    def show(entry) -> None:
        if as_json:
            return
        label = f"{entry.name}@{entry.version}" if entry.version else entry.name
        if entry.status in ("indexed", "present"):
            note = "" if entry.versioned_url else " [yellow](docs URL not version-specific)[/]"
            out.print(f"  [green]{entry.status}[/] {esc(label)}: {entry.pages} pages from {esc(entry.url or '')}"
                      f"{note}")
        else:
            out.print(f"  [yellow]{entry.status}[/] {esc(label)}: {esc(entry.reason or '')}")

    asked = {"registry": None} if no_registry else {"registry": registry} if registry else {}
    with service() as rag, spinner("syncing the docs of the project's dependencies", enabled=not as_json):
        report = rag.sync(path, docs_map=docs_map, max_pages=max_pages, allow_private=allow_private or None,
                          refresh=refresh, on_entry=show, **asked)
    if as_json:
        print_json(report.to_dict())
        return
    totals = report.to_dict()["totals"]
    out.print(f"[bold]{esc(report.project)}[/]: {totals['indexed']} indexed, {totals['present']} already indexed, "
              f"{totals['failed']} failed, {totals['unresolved']} unresolved")


def _print_report(report: CrawlReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"[bold]{esc(source_label(report.source, report.version))}[/]: {report.pages_indexed} pages indexed "
        f"({report.chunks_indexed} chunks), {report.pages_unchanged} unchanged, {report.pages_removed} removed, "
        f"{report.pages_failed} failed in {report.elapsed_s:.1f}s"
    )
    if report.changes:
        changes = report.changes
        out.print(f"  changes: {changes['added']} pages added, {changes['changed']} changed, {changes['removed']} "
                  f"removed (`evorag sources changes {source_label(report.source, report.version)}`)",
                  highlight=False, markup=False)
    for failure in report.failures[:10]:
        out.print(f"  [yellow]skipped[/] {esc(failure['url'])}: {esc(failure['reason'])}")
    if len(report.failures) > 10:
        out.print(f"  ... and {len(report.failures) - 10} more (use --json to see all)")
    for skipped in report.skipped[:5]:
        out.print(f"  [dim]not indexed[/] {esc(skipped['url'])}: {esc(skipped['reason'])} (its links were followed)")
    if len(report.skipped) > 5:
        out.print(f"  ... and {len(report.skipped) - 5} more not indexed (use --json to see all)")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    source: SourceOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-k", min=1, max=1000, help="Number of results.")] = 5,
    code: Annotated[bool, typer.Option("--code", help="Search code examples only.")] = False,
    per_page: Annotated[int | None, typer.Option(
        "--per-page", min=0, max=1000,
        help="Sections of one page in the results (default: EVORAG_MAX_PER_PAGE, 1: distinct pages; 0: no limit)."
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Hybrid (dense + BM25) search over indexed documentation, with citations."""
    with service() as rag:
        hits = rag.search(query, source=source, limit=limit, code=code, max_per_page=per_page)
    if as_json:
        print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        out.print("No results. Is anything indexed? See `evorag sources`.")
    for number, hit in enumerate(hits, 1):
        chunk = hit.chunk
        where = source_label(chunk.source, chunk.version)
        out.print(f"[bold]\\[{number}][/] {esc(chunk.title)} — {esc(chunk.section)}  [dim]{esc(where)} "
                  f"({hit.score:.4f})[/]")
        out.print(f"    {chunk.url}", highlight=False, markup=False)
        snippet = " ".join(chunk.text.split())[:300]
        out.print(f"    {snippet}", highlight=False, markup=False)


def _when(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds") if timestamp else None


@sources_app.callback()
def sources(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List indexed sources and their versions: pages, chunks and the last crawl (* marks what NAME@latest
    means; '-' is an unversioned source)."""
    if ctx.invoked_subcommand is not None:
        return
    with service() as rag:
        records = rag.sources()
    rows = [{"name": r.name, "start_url": r.start_url, "pages": r.pages, "chunks": r.chunks,
             "last_crawl": _when(r.last_crawl_at), "latest": r.latest_version, "latest_marked": r.latest is not None,
             "versions": [{**v.to_dict(), "last_crawl": _when(v.last_crawl_at),
                           "latest": r.versioned and v.version == r.latest_version} for v in r.ordered_versions]}
            for r in records]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No sources yet. Add one with `evorag crawl URL`.")
        return
    table = Table("source", "version", "pages", "chunks", "last crawl", "start URL")
    for row in rows:
        for version in row["versions"] or [{"version": None, "pages": 0, "chunks": 0, "last_crawl": None,
                                            "start_url": row["start_url"], "latest": False}]:
            label = display_version(version["version"]) + (" *" if version["latest"] and len(row["versions"]) > 1 else "")
            table.add_row(esc(row["name"]), esc(label), str(version["pages"]), str(version["chunks"]),
                          version["last_crawl"] or "-", esc(version["start_url"] or "-"))
    out.print(table)


@sources_app.command("remove")
def sources_remove(name: Annotated[str, typer.Argument(help="Source to remove, or one version of it: NAME@VERSION.")],
                   as_json: JsonFlag = False) -> None:
    """Remove a source, or one of its versions: its pages and chunks leave the index."""
    with service() as rag:
        rag.remove_source(name)
    if as_json:
        print_json({"removed": name})
    else:
        out.print(f"removed source {name}", markup=False)


def _print_citations(answer: Answer) -> None:
    for citation in answer.citations:
        version = f" ({citation['source']}@{citation['version']})" if citation.get("version") else ""
        out.print(f"  [{citation['number']}] {citation['title']} — {citation['section']}{version}: {citation['url']}",
                  highlight=False, markup=False)


def _quality_line(metrics: dict) -> str:
    return ", ".join(f"{key} {metrics[key]:.2f}" for key in QUALITY_KEYS if isinstance(metrics.get(key), (int, float)))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question about the indexed documentation.")],
    source: SourceOpt = None,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the correctness report.")] = False,
    reference: Annotated[str | None, typer.Option(help="A reference answer to score ROUGE against.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question with numbered citations and a correctness report."""
    with service() as rag, spinner("thinking…", enabled=not as_json):
        answer = rag.ask(question, source=source, evaluate=not no_eval, reference=reference)
    if as_json:
        print_json(answer.to_dict())
        return
    from rich.markdown import Markdown  # markdown-it and pygments: only `ask` needs them, not every command

    out.print(Markdown(strip_control(answer.answer), hyperlinks=False))
    if answer.note:
        out.print(f"[yellow]note:[/] {esc(answer.note)}", highlight=False)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        _print_citations(answer)
    if answer.metrics:
        out.print(f"[dim]quality: {_quality_line(answer.metrics)}  (model: {esc(answer.model)})[/]")
    if answer.answer_id is not None:
        out.print(f"[dim]answer {answer.answer_id}: rate it with `evorag feedback {answer.answer_id} up|down`[/]")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the bundled docs site (0: any free port).")] = 8765,
    as_json: JsonFlag = False,
) -> None:
    """Run the main job end to end, offline: serve bundled docs on 127.0.0.1, crawl, index, search, answer.

    A guided tour of several use cases in a row (crawl, search, ask), so it calls several service methods."""
    results: dict[str, Any] = {"questions": []}
    with serve_demo_site(port) as base_url, service() as rag:
        if not as_json:
            out.print(f"Serving the bundled documentation at {base_url}")
        # The demo site is our own server on loopback: allowing private addresses is explicit here.
        request = CrawlRequest(url=base_url + "index.html", source=DEMO_SOURCE, allow_private=True)
        previous = next((s for s in rag.sources() if s.name == DEMO_SOURCE), None)
        if previous and previous.start_url != request.url:  # served on another port last time
            rag.remove_source(DEMO_SOURCE)
        with crawl_progress(err, enabled=not as_json) as on_progress:
            report = rag.crawl(request, on_progress=on_progress)
        results["crawl"] = report.to_dict()
        if not as_json:
            out.print(f"Indexed {report.pages_indexed} pages ({report.chunks_indexed} chunks), "
                      f"{report.pages_unchanged} unchanged, in {report.elapsed_s:.1f}s")
        for question in DEMO_QUESTIONS:
            hits = rag.search(question, source=DEMO_SOURCE, limit=3)
            results["questions"].append({"question": question, "results": [h.to_dict() for h in hits]})
            if not as_json:
                out.print(f"\n[bold]? {esc(question)}[/]")
                for number, hit in enumerate(hits, 1):
                    out.print(f"  [{number}] {hit.chunk.title} — {hit.chunk.section}: {hit.chunk.url}",
                              highlight=False, markup=False)
        question = DEMO_QUESTIONS[0]
        # The bundled 135M-parameter model rambles past a short answer: keep the demo's answer short.
        rag.settings.llm_max_tokens = min(rag.settings.llm_max_tokens, 160)
        with spinner(f"answering with {rag.settings.llm_provider} model…", enabled=not as_json):
            answer = rag.ask(question, source=DEMO_SOURCE)
        results["answer"] = answer.to_dict()
        if not as_json:
            out.print(f"\n[bold]Answer to: {esc(question)}[/] [dim](model: {esc(answer.model)})[/]")
            out.print(answer.answer, highlight=False, markup=False)
            if answer.note:
                out.print(f"[yellow]note:[/] {esc(answer.note)}", highlight=False)
            _print_citations(answer)
            if answer.metrics:
                out.print(f"[dim]correctness report: {_quality_line(answer.metrics)}[/]")
    if as_json:
        print_json(results)
