"""The ``evorag`` command line. Thin: parse, call the service, print (tables for people, --json for scripts)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from evorag.errors import EvoragError

app = typer.Typer(
    name="evorag",
    help="Self-improving documentation RAG: crawl docs, search them with citations, measure answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
sources_app = typer.Typer(help="List or remove indexed sources.", invoke_without_command=True)
app.add_typer(sources_app, name="sources")

out = Console(soft_wrap=True)
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SourceOpt = Annotated[str | None, typer.Option("--source", "-s", help="Restrict to this source.")]


def _service():
    from evorag.service import Evorag

    return Evorag()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@app.command()
def crawl(
    url: Annotated[str, typer.Argument(help="Start URL of the documentation site.")],
    source: Annotated[str | None, typer.Option(help="Name of the source (default: from the host).")] = None,
    max_pages: Annotated[int | None, typer.Option(min=1, help="Stop after this many pages.")] = None,
    max_depth: Annotated[int | None, typer.Option(min=0, help="Follow links this deep.")] = None,
    include: Annotated[list[str], typer.Option(help="Only URLs matching this glob (repeatable).")] = [],  # noqa: B006
    exclude: Annotated[list[str], typer.Option(help="Skip URLs matching this glob (repeatable).")] = [],  # noqa: B006
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow loopback and private addresses.")
    ] = False,
    browser: Annotated[bool, typer.Option("--browser", help="Render JavaScript with the system Chromium.")] = False,
    selector: Annotated[str | None, typer.Option(help="CSS selector of the main content (per source).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Crawl a documentation site and index it; re-running updates only what changed."""
    from evorag.progress import crawl_progress
    from evorag.service import CrawlRequest

    request = CrawlRequest(
        url=url,
        source=source,
        max_pages=max_pages,
        max_depth=max_depth,
        include=include,
        exclude=exclude,
        allow_private=allow_private or None,
        browser=browser,
        selector=selector,
    )
    with _service() as service, crawl_progress(err, enabled=not as_json) as on_progress:
        report = service.crawl(request, on_progress=on_progress)
    if as_json:
        _print_json(report.to_dict())
        return
    out.print(
        f"[bold]{report.source}[/]: {report.pages_indexed} pages indexed ({report.chunks_indexed} chunks), "
        f"{report.pages_unchanged} unchanged, {report.pages_removed} removed, {report.pages_failed} failed "
        f"in {report.elapsed_s:.1f}s"
    )
    for failure in report.failures[:10]:
        out.print(f"  [yellow]skipped[/] {failure['url']}: {failure['reason']}")
    if len(report.failures) > 10:
        out.print(f"  ... and {len(report.failures) - 10} more (use --json to see all)")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    source: SourceOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-k", min=1, max=1000, help="Number of results.")] = 5,
    code: Annotated[bool, typer.Option("--code", help="Search code examples only.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Hybrid (dense + BM25) search over indexed documentation, with citations."""
    with _service() as service:
        hits = service.search(query, source=source, limit=limit, code=code)
    if as_json:
        _print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        out.print("No results. Is anything indexed? See `evorag sources`.")
    for number, hit in enumerate(hits, 1):
        chunk = hit.chunk
        out.print(f"[bold][{number}][/] {chunk.title} — {chunk.section}  [dim]({hit.score:.4f})[/]")
        out.print(f"    [link={chunk.url}]{chunk.url}[/link]", highlight=False)
        snippet = " ".join(chunk.text.split())[:300]
        out.print(f"    {snippet}", highlight=False, markup=False)


@sources_app.callback()
def sources(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List indexed sources: pages, chunks and the last crawl."""
    if ctx.invoked_subcommand is not None:
        return
    import datetime as dt

    with _service() as service:
        records = service.sources()
    rows = [
        {
            "name": r.name,
            "start_url": r.start_url,
            "pages": r.pages,
            "chunks": r.chunks,
            "last_crawl": dt.datetime.fromtimestamp(r.last_crawl_at, dt.UTC).isoformat(timespec="seconds")
            if r.last_crawl_at
            else None,
        }
        for r in records
    ]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("No sources yet. Add one with `evorag crawl URL`.")
        return
    from rich.table import Table

    table = Table("source", "pages", "chunks", "last crawl", "start URL")
    for row in rows:
        table.add_row(row["name"], str(row["pages"]), str(row["chunks"]), row["last_crawl"] or "-",
                      row["start_url"] or "-")
    out.print(table)


@sources_app.command("remove")
def sources_remove(name: Annotated[str, typer.Argument(help="Source to remove.")], as_json: JsonFlag = False) -> None:
    """Remove a source: its pages and chunks leave the index."""
    with _service() as service:
        service.remove_source(name)
    if as_json:
        _print_json({"removed": name})
    else:
        out.print(f"removed source {name}")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the bundled docs site (0: any free port).")] = 8765,
    as_json: JsonFlag = False,
) -> None:
    """Run the main job end to end, offline: serve bundled docs on 127.0.0.1, crawl, index, search."""
    from evorag.demo import DEMO_QUESTIONS, DEMO_SOURCE, serve_demo_site
    from evorag.progress import crawl_progress
    from evorag.service import CrawlRequest

    results: dict[str, Any] = {"questions": []}
    with serve_demo_site(port) as base_url, _service() as service:
        if not as_json:
            out.print(f"Serving the bundled documentation at {base_url}")
        # The demo site is our own server on loopback: allowing private addresses is explicit here.
        request = CrawlRequest(url=base_url + "index.html", source=DEMO_SOURCE, allow_private=True)
        previous = service.catalog.get_source(DEMO_SOURCE)
        if previous and previous.start_url != request.url:  # served on another port last time
            service.remove_source(DEMO_SOURCE)
        with crawl_progress(err, enabled=not as_json) as on_progress:
            report = service.crawl(request, on_progress=on_progress)
        results["crawl"] = report.to_dict()
        if not as_json:
            out.print(f"Indexed {report.pages_indexed} pages ({report.chunks_indexed} chunks), "
                      f"{report.pages_unchanged} unchanged, in {report.elapsed_s:.1f}s")
        for question in DEMO_QUESTIONS:
            hits = service.search(question, source=DEMO_SOURCE, limit=3)
            results["questions"].append({"question": question, "results": [h.to_dict() for h in hits]})
            if not as_json:
                out.print(f"\n[bold]? {question}[/]")
                for number, hit in enumerate(hits, 1):
                    out.print(f"  [{number}] {hit.chunk.title} — {hit.chunk.section}: {hit.chunk.url}",
                              highlight=False, markup=False)
    if as_json:
        _print_json(results)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question about the indexed documentation.")],
    source: SourceOpt = None,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the correctness report.")] = False,
    reference: Annotated[str | None, typer.Option(help="A reference answer to score ROUGE against.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question with numbered citations and a correctness report."""
    with _service() as service:
        with err.status("thinking…", spinner="dots") if not as_json else _nothing():
            answer = service.ask(question, source=source, evaluate=not no_eval, reference=reference)
    if as_json:
        _print_json(answer.to_dict())
        return
    from rich.markdown import Markdown

    out.print(Markdown(answer.answer))
    if answer.note:
        out.print(f"[yellow]note:[/] {answer.note}", highlight=False)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for citation in answer.citations:
            out.print(f"  [{citation['number']}] {citation['title']} — {citation['section']}: {citation['url']}",
                      highlight=False, markup=False)
    if answer.metrics:
        m = answer.metrics
        parts = [f"{name} {m[name]:.2f}" for name in ("grounding", "rougeL", "ndcg", "code_quality", "overall")
                 if isinstance(m.get(name), (int, float))]
        out.print("[dim]quality: " + ", ".join(parts) + f"  (model: {answer.model})[/]")


@app.command()
def metrics(
    last: Annotated[int, typer.Option(min=1, help="Show the newest N reports.")] = 20,
    html: Annotated[str | None, typer.Option(help="Write a self-contained HTML report with plots here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """History of answer quality, with the improvement trend."""
    from pathlib import Path

    with _service() as service:
        history = service.metrics.history(last=last, kind="answer")
        trend = service.metrics.trend(window=service.settings.trend_window)
    if html:
        from tools.metrics_html import write_html_report

        path = write_html_report(history, Path(html), trend)
        err.print(f"wrote {path}")
    if as_json:
        _print_json(history)
        return
    if not history:
        out.print("No answers measured yet. Ask something with `evorag ask`.")
        return
    from rich.table import Table

    table = Table("id", "when", "query", "grounding", "rouge", "ndcg", "code", "overall", "model")
    import datetime as dt

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"

    for row in history:
        when = dt.datetime.fromtimestamp(row["created_at"], dt.UTC).strftime("%m-%d %H:%M")
        table.add_row(str(row["id"]), when, (row["query"] or "")[:40], fmt(row.get("grounding")),
                      fmt(row.get("rougeL")), fmt(row.get("ndcg")), fmt(row.get("code_quality")),
                      fmt(row.get("overall")), row.get("model") or "")
    out.print(table)
    out.print(f"trend over the last {trend.window}: {trend.direction}"
              + (f" (slope {trend.slope:+.4f} per answer)" if trend.slope is not None else ""))


@app.command("eval")
def eval_(
    dataset: Annotated[str, typer.Argument(help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
                                                "or a golden-set JSONL file of {query, relevant, answer}.")],
    source: SourceOpt = None,
    max_queries: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N queries.")] = None,
    answers: Annotated[bool, typer.Option("--answers/--no-answers",
                                          help="Also answer golden items that have a reference answer.")] = True,
    baseline: Annotated[str | None, typer.Option(help="Compare with this baseline; exit 1 on a regression.")] = None,
    save_baseline: Annotated[str | None, typer.Option(help="Save this run's metrics as a baseline.")] = None,
    tolerance: Annotated[float, typer.Option(min=0.0, max=0.99, help="Allowed relative drop.")] = 0.05,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval (nDCG@10, Recall@k, MRR, Hit@k) and answer quality; gate on a baseline."""
    from pathlib import Path

    from evorag.errors import NotFoundError
    from evorag.progress import counting_progress
    from tools import regression_gate
    from tools.retrieval_eval import evaluate_beir, evaluate_golden

    path = Path(dataset)
    if not path.exists():
        raise NotFoundError(f"no data set at {path}", hint="pass a BEIR folder or a .jsonl golden set")
    baseline_metrics = regression_gate.load_baseline(Path(baseline)) if baseline else None
    with _service() as service:
        if path.is_dir():
            from tools.datasets import load_beir

            size = len(load_beir(path).corpus)
            with counting_progress(err, "indexing corpus", size, enabled=not as_json) as advance:
                result = evaluate_beir(service, path, max_queries=max_queries, advance_index=advance)
        else:
            result, _ = evaluate_golden(service, path, source=source, answers=answers)
        service.metrics.record(result.metrics, query=f"eval {result.dataset}", source_filter=source,
                               model=result.config.get("embedder"), kind="eval")
    gate = None
    if baseline_metrics is not None:
        gate = regression_gate.compare(result.metrics, baseline_metrics, tolerance=tolerance)
    if save_baseline:
        regression_gate.save_baseline(Path(save_baseline), result.metrics,
                                      meta={"dataset": result.dataset, **result.config})
    if as_json:
        _print_json({**result.to_dict(), "gate": gate.to_dict() if gate else None})
    else:
        from rich.table import Table

        table = Table("metric", "value", title=f"{result.dataset} ({result.queries} queries)")
        for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "hit@1", "hit@10", "answer_overall",
                    "answer_grounding", "answer_rougeL", "answer_fallback_rate"):
            if key in result.metrics:
                table.add_row(key, f"{result.metrics[key]:.4f}")
        out.print(table)
        out.print(f"indexing {result.index_seconds:.1f}s, search {result.search_seconds:.1f}s")
        if gate:
            verdict = "[green]passed[/]" if gate.passed else "[red]FAILED[/]"
            out.print(f"regression gate {verdict} ({len(gate.compared)} metrics, tolerance {tolerance:.0%})")
            for reg in gate.regressions:
                out.print(f"  {reg.metric}: {reg.baseline:.4f} -> {reg.current:.4f} ({reg.relative_change:+.1%})")
    if gate and not gate.passed:
        raise typer.Exit(1)


@app.command()
def config(as_json: JsonFlag = False) -> None:
    """Show the effective settings (secrets masked) and where they come from."""
    from evorag.settings import config_file_candidates, load_settings

    settings = load_settings()
    data = json.loads(settings.model_dump_json())
    data["config_files"] = [str(p) for p in config_file_candidates() if p.is_file()]
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        out.print(f"{key} = {value}", highlight=False, markup=False)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user-facing errors become one line on stderr and an exit code."""
    try:
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        result = app(args=argv, standalone_mode=False)
    except EvoragError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"  hint: {exc.hint}", highlight=False, markup=False)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
