"""The ``evorag`` command line. Thin: parse, call the service, print (tables for people, --json for scripts).

Who the CLI acts for: the local OS user. Owning EVORAG_HOME (or being root) makes them its admin, so every
command's role check passes; anyone else is a reader. One exception holds even for the admin: approving a
HIGH-risk change needs the human approval token, because a coding assistant with a shell can run this CLI
(and give it a terminal with ``script``) as easily as a person can.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape as esc

from evorag.errors import EvoragError
from evorag.terminal import escape_json_controls, strip_control

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
tools_app = typer.Typer(help="Deployed (evolved) tools: add through the gates, list, document.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
approvals_app = typer.Typer(
    help="Pending approvals of risky changes. Deciding needs the approver role (the local user who owns "
    "EVORAG_HOME is admin). LOW risk may be approved by policy (--yes), MEDIUM by an approver, HIGH by an "
    "approver with the human approval token: EVORAG_APPROVAL_TOKEN, or typed at the prompt (never echoed). "
    "A terminal alone is not proof of a person: an assistant can drive one.",
    invoke_without_command=True,
)
app.add_typer(approvals_app, name="approvals")
users_app = typer.Typer(
    help="Principals and their roles (reader < operator < approver < admin) for MCP over HTTP and the UI. "
    "Tokens are shown once and stored hashed under EVORAG_HOME. Needs the admin role (the local user who "
    "owns EVORAG_HOME).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
team_app = typer.Typer(help="Scripted team runs.", no_args_is_help=True)
app.add_typer(team_app, name="team")

class _TerminalSafeConsole(Console):
    """A Console that prints text, never terminal commands: escape sequences and control characters in the
    strings it is given (tool output, gate messages, page text, model output) are removed first. Markup in
    untrusted text is still escaped where it is formatted (``esc``); renderables (tables, Markdown) are
    sanitised where they are built."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(strip_control(o) if isinstance(o, str) else o for o in objects), **kwargs)


out = _TerminalSafeConsole(soft_wrap=True)
err = _TerminalSafeConsole(stderr=True, soft_wrap=True)  # no wrapping: an error stays one line in a log

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
SourceOpt = Annotated[str | None, typer.Option("--source", "-s", help="Restrict to this source.")]
YES_HELP = "Approve LOW risk without asking (policy); MEDIUM and HIGH stay pending for `evorag approvals approve`."


def _principal():
    """The local CLI user (see the module docstring)."""
    from evorag.principals import home_owner_principal
    from evorag.settings import load_settings

    return home_owner_principal(load_settings().home, via="cli")


def _require(operation: str):
    """Check the local CLI user's role for a command that does not go through a service method."""
    from evorag.principals import require

    return require(_principal(), operation)


def _service():
    from evorag.service import Evorag

    return Evorag(principal=_principal())


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _print_json(data: Any) -> None:
    # json.dumps escapes C0 controls itself; DEL, C1 and bidi overrides stay raw without ensure_ascii.
    sys.stdout.write(escape_json_controls(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


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
        out.print(f"  [yellow]skipped[/] {esc(failure['url'])}: {esc(failure['reason'])}")
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
        out.print(f"[bold]\\[{number}][/] {esc(chunk.title)} — {esc(chunk.section)}  [dim]({hit.score:.4f})[/]")
        out.print(f"    {chunk.url}", highlight=False, markup=False)
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
                      esc(row["start_url"] or "-"))
    out.print(table)


@sources_app.command("remove")
def sources_remove(name: Annotated[str, typer.Argument(help="Source to remove.")], as_json: JsonFlag = False) -> None:
    """Remove a source: its pages and chunks leave the index."""
    with _service() as service:
        service.remove_source(name)
    if as_json:
        _print_json({"removed": name})
    else:
        out.print(f"removed source {name}", markup=False)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the bundled docs site (0: any free port).")] = 8765,
    as_json: JsonFlag = False,
) -> None:
    """Run the main job end to end, offline: serve bundled docs on 127.0.0.1, crawl, index, search, answer."""
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
                out.print(f"\n[bold]? {esc(question)}[/]")
                for number, hit in enumerate(hits, 1):
                    out.print(f"  [{number}] {hit.chunk.title} — {hit.chunk.section}: {hit.chunk.url}",
                              highlight=False, markup=False)
        question = DEMO_QUESTIONS[0]
        # The bundled 135M-parameter model rambles past a short answer: keep the demo's answer short.
        service.settings.llm_max_tokens = min(service.settings.llm_max_tokens, 160)
        with err.status(f"answering with {service.settings.llm_provider} model…", spinner="dots") \
                if not as_json else _nothing():
            answer = service.ask(question, source=DEMO_SOURCE)
        results["answer"] = answer.to_dict()
        if not as_json:
            out.print(f"\n[bold]Answer to: {esc(question)}[/] [dim](model: {esc(answer.model)})[/]")
            out.print(answer.answer, highlight=False, markup=False)
            if answer.note:
                out.print(f"[yellow]note:[/] {esc(answer.note)}", highlight=False)
            for citation in answer.citations:
                out.print(f"  [{citation['number']}] {citation['title']} — {citation['section']}: {citation['url']}",
                          highlight=False, markup=False)
            if answer.metrics:
                m = answer.metrics
                parts = [f"{k} {m[k]:.2f}" for k in ("grounding", "rougeL", "ndcg", "code_quality", "overall")
                         if isinstance(m.get(k), (int, float))]
                out.print("[dim]correctness report: " + ", ".join(parts) + "[/]")
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
    with _service() as service, err.status("thinking…", spinner="dots") if not as_json else _nothing():
        answer = service.ask(question, source=source, evaluate=not no_eval, reference=reference)
    if as_json:
        _print_json(answer.to_dict())
        return
    from rich.markdown import Markdown

    out.print(Markdown(strip_control(answer.answer), hyperlinks=False))
    if answer.note:
        out.print(f"[yellow]note:[/] {esc(answer.note)}", highlight=False)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for citation in answer.citations:
            out.print(f"  [{citation['number']}] {citation['title']} — {citation['section']}: {citation['url']}",
                      highlight=False, markup=False)
    if answer.metrics:
        m = answer.metrics
        parts = [f"{name} {m[name]:.2f}" for name in ("grounding", "rougeL", "ndcg", "code_quality", "overall")
                 if isinstance(m.get(name), (int, float))]
        out.print("[dim]quality: " + ", ".join(parts) + f"  (model: {esc(answer.model)})[/]")


@app.command()
def metrics(
    last: Annotated[int, typer.Option(min=1, help="Show the newest N reports.")] = 20,
    html: Annotated[str | None, typer.Option(help="Write a self-contained HTML report with plots here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """History of answer quality, with the improvement trend."""
    from pathlib import Path

    _require("metrics")
    with _service() as service:
        history = service.metrics.history(last=last, kind="answer")
        trend = service.metrics.trend(window=service.settings.trend_window)
    if html:
        from evorag.tools.metrics_html import write_html_report

        path = write_html_report(history, Path(html), trend)
        err.print(f"wrote {path}", markup=False)
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
        table.add_row(str(row["id"]), when, esc(strip_control(row["query"] or "")[:40]), fmt(row.get("grounding")),
                      fmt(row.get("rougeL")), fmt(row.get("ndcg")), fmt(row.get("code_quality")),
                      fmt(row.get("overall")), esc(row.get("model") or ""))
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
    from evorag.tools import regression_gate
    from evorag.tools.retrieval_eval import evaluate_beir, evaluate_golden

    _require("eval")
    path = Path(dataset)
    if not path.exists():
        raise NotFoundError(f"no data set at {path}", hint="pass a BEIR folder or a .jsonl golden set")
    baseline_metrics = regression_gate.load_baseline(Path(baseline)) if baseline else None
    with _service() as service:
        if path.is_dir():
            from evorag.tools.datasets import load_beir

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


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _outcome_lines(outcome) -> None:
    color = {"deployed": "green", "pending": "yellow"}.get(outcome.status, "red")
    out.print(f"[bold {color}]{outcome.status}[/] (risk {outcome.risk})"
              + (f": tool {outcome.tool}" if outcome.tool else "")
              + (f", version {outcome.version_id}" if outcome.version_id else ""))
    for verdict in outcome.verdicts:
        mark = "[green]✓[/]" if verdict.ok else "[red]✗[/]"
        out.print(f"  {mark} {verdict.gate}" + (f": {esc(verdict.reason)}" if verdict.reason else ""), highlight=False)
    if outcome.status == "pending" and outcome.approval_id:
        out.print(f"  waiting for a human: `evorag approvals approve {outcome.approval_id}` (or the UI)")


@tools_app.command("add")
def tools_add(
    path: Annotated[str, typer.Argument(help="Directory with tool.py, optional requirements.txt and test_*.py.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
    = False,
    request: Annotated[str, typer.Option(help="Why this tool is wanted (kept in the history).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Run a hand-written tool through the same gates as evolved ones; deploy it if approved."""
    from pathlib import Path

    approver = _approver(yes, as_json)
    with _service() as service:
        outcome = service.add_tool(Path(path), request=request, approver=approver)
    if as_json:
        _print_json({"status": outcome.status, "gate": outcome.gate, "reason": outcome.reason,
                     "risk": outcome.risk, "tool": outcome.tool, "version": outcome.version_id,
                     "approval_id": outcome.approval_id, "run_id": outcome.run_id,
                     "verdicts": outcome.to_dict()["verdicts"]})
    else:
        _outcome_lines(outcome)
    if outcome.status == "rejected":
        raise typer.Exit(1)


@tools_app.command("list")
def tools_list(as_json: JsonFlag = False) -> None:
    """Deployed tools with their version and risk."""
    _require("list_tools")
    with _service() as service:
        manifests = service.registry.tools()
    if as_json:
        _print_json([m.to_dict() for m in manifests])
        return
    if not manifests:
        out.print("No evolved tools yet. Add one with `evorag tools add PATH` or `evorag evolve REQUEST`.")
    for m in manifests:
        out.print(f"[bold]{esc(m.name)}[/] v{m.version} ({esc(str(m.risk))}): "
                  f"{esc(m.summary())}")  # untrusted text: one safe line


@tools_app.command("docs")
def tools_docs() -> None:
    """Print the generated reference of every deployed tool (Markdown), then the changelog."""
    _require("list_tools")
    with _service() as service:
        sys.stdout.write(strip_control(service.registry.documentation() + "\n"
                                       + service.evolution.repository.changelog()))


@tools_app.command("call")
def tools_call(
    name: Annotated[str, typer.Argument(help="Deployed tool name.")],
    arguments: Annotated[str, typer.Argument(help="Arguments as a JSON object.")] = "{}",
) -> None:
    """Call a deployed tool (it runs in the sandbox) and print its JSON result."""
    from evorag.errors import UserError

    try:
        args = json.loads(arguments)
    except ValueError as exc:
        raise UserError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise UserError("arguments must be a JSON object", hint='e.g. \'{"text": "hello"}\'')
    with _service() as service:
        _print_json(service.call_tool(name, args))


@app.command()
def versions(as_json: JsonFlag = False) -> None:
    """Checkpoints of the deployed tool set, oldest first."""
    import datetime as dt

    with _service() as service:
        items = service.versions()
    if as_json:
        _print_json([v.to_dict() for v in items])
        return
    for v in items:
        when = dt.datetime.fromtimestamp(v.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        out.print(f"{v.id}  {when}  {esc(v.message.splitlines()[0])}  [dim]tools: {', '.join(v.tools) or '-'}[/]",
                  highlight=False)


@app.command()
def rollback(
    version_id: Annotated[str, typer.Argument(help="A version id from `evorag versions`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore the exact tool set of a checkpoint (recorded as a new checkpoint)."""
    if not yes:
        if not _interactive():
            from evorag.errors import UserError

            raise UserError("rollback needs confirmation", hint="pass --yes in scripts")
        typer.confirm(f"Restore the tool set of {version_id}?", abort=True)
    with _service() as service:
        version, change = service.rollback(version_id)
    if as_json:
        _print_json({"version": version.to_dict(), "added": change.added, "removed": change.removed})
    else:
        out.print(f"rolled back to {version_id} (new checkpoint {version.id}); tools now: {', '.join(version.tools) or '-'}",
                  markup=False)


@approvals_app.callback()
def approvals(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List pending approvals."""
    if ctx.invoked_subcommand is not None:
        return
    with _service() as service:
        pending = service.pending_approvals()
    if as_json:
        _print_json([p.to_dict() for p in pending])
        return
    if not pending:
        out.print("Nothing is waiting for approval.")
    for p in pending:
        out.print(f"{p.id}  {p.risk:6}  {p.tool}: {p.summary}", highlight=False, markup=False)


def _read_secret(prompt: str) -> str:
    """A secret typed at the terminal, never echoed; empty at end of input."""
    import getpass

    try:
        return getpass.getpass(prompt)
    except EOFError:
        return ""


def _decide(approval_id: str, approve: bool, token: str | None, reason: str, as_json: bool) -> None:
    with _service() as service:
        if approve and not token and sys.stdin.isatty():
            request = service.evolution.approvals.get(approval_id)
            if request.status == "pending" and request.risk not in ("LOW", "MEDIUM"):
                # Asking is a convenience for the person; their proof is the token, not the terminal.
                token = _read_secret(f"{approval_id} is {request.risk} risk: human approval token (not echoed): ")
        result = service.decide_approval(approval_id, approve=approve, token=token or None, reason=reason)
    data = result.to_dict()
    if as_json:
        _print_json(data)
    else:
        out.print(f"{approval_id}: {data.get('status')}" + (f", tool {data.get('tool')}" if data.get("tool") else ""),
                  markup=False)


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The approval id.")],
    token: Annotated[str | None, typer.Option(
        envvar="EVORAG_APPROVAL_TOKEN", show_envvar=False,
        help="The human approval token, needed for HIGH risk (default: EVORAG_APPROVAL_TOKEN, else asked at "
        "the terminal without echo).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a pending change and deploy it. Needs the approver role; HIGH risk also needs the human
    approval token, even for the admin: a terminal is not proof that a person is typing."""
    _decide(approval_id, True, token, "approved from the CLI", as_json)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="The approval id.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "rejected from the CLI",
    as_json: JsonFlag = False,
) -> None:
    """Reject a pending change (approver role)."""
    _decide(approval_id, False, None, reason, as_json)


def _approver(yes: bool, as_json: bool):
    """Ask at the terminal when there is one to ask at (HIGH risk then also asks for the human approval
    token), else apply the policy: --yes approves LOW risk only."""
    from evorag.tools.approvals import PolicyApprover, TerminalApprover

    principal = _principal()
    if _interactive() and not yes and not as_json:
        return TerminalApprover(principal, ask_secret=_read_secret)
    return PolicyApprover(assume_yes=yes, principal=principal)


def _print_event(event) -> None:
    source = getattr(event, "source", None) or (event.get("source") if isinstance(event, dict) else None)
    content = getattr(event, "content", None) or (event.get("content") if isinstance(event, dict) else None)
    if source and isinstance(content, str) and source != "user":
        first = content.strip().splitlines()[0] if content.strip() else ""
        err.print(f"[dim]{esc(str(source))}:[/] {esc(first[:160])}", highlight=False)


@app.command()
def evolve(
    request: Annotated[str, typer.Argument(help="The capability you want, in plain words.")],
    docs: Annotated[list[str], typer.Option("--docs", help="Documentation URL to learn from (repeatable).")] = [],  # noqa: B006
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Let the agent team build a new tool: plan, validate, generate, debug, test, approve, deploy."""
    with _service() as service:
        outcome = asyncio.run(service.aevolve(request, docs=docs, approver=_approver(yes, as_json),
                                              on_event=None if as_json else _print_event))
    if as_json:
        _print_json(outcome.to_dict())
    else:
        _outcome_lines(outcome)
    if outcome.status == "rejected":
        raise typer.Exit(1)


@app.command()
def heal(
    description: Annotated[str, typer.Argument(help="What seems wrong (kept in the audit log).")] = "health check",
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the health checks; diagnose and fix failures through the same gates as evolutions."""
    with _service() as service:
        report = asyncio.run(service.aheal(description, approver=_approver(yes, as_json),
                                           on_event=None if as_json else _print_event))
    if as_json:
        _print_json(report.to_dict())
    else:
        for check in report.after or report.before:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            out.print(f"{mark} {esc(check.name)}: {esc(check.detail)}", highlight=False)
        for line in report.diagnosis:
            out.print(f"diagnosis: {line}", highlight=False, markup=False)
        for action in report.actions:
            out.print(f"action: {action}", highlight=False, markup=False)
    if not report.healed:
        raise typer.Exit(1)


@app.command()
def gaps(
    crawl: Annotated[bool, typer.Option("--crawl", help="Crawl the proposals (each needs approval).")] = False,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Scores below this count as weak.")] = 0.5,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Apply the policy without asking: a proposed crawl is MEDIUM risk, so it stays pending "
        "for `evorag approvals approve`.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Find knowledge gaps (weak answers + links crawls did not follow) and propose crawls."""
    with _service() as service:
        proposals = service.find_gaps(threshold=threshold)
        report = None
        if crawl and proposals:
            report = asyncio.run(service.afill_gaps(proposals, approver=_approver(yes, as_json)))
    if as_json:
        _print_json(report.to_dict() if report else [p.to_dict() for p in proposals])
        return
    if not proposals:
        out.print("No knowledge gaps found: no weak answers match links the crawls saw.")
    for p in proposals:
        out.print(f"{p.url}  (score {p.score:g}, linked from {p.found_in}) for: {'; '.join(p.queries)[:120]}", markup=False,
                  highlight=False)
    if report:
        for item in report.crawled:
            out.print(f"crawl {item['url']}: {item['status']}", highlight=False, markup=False)
        for query, after in report.after.items():
            before = report.before.get(query, {})
            out.print(f"  {query[:60]}: overall {before.get('overall')} -> {after.get('overall')}", highlight=False,
                      markup=False)


@team_app.command("run")
def team_run(
    spec: Annotated[str, typer.Argument(help="A YAML or JSON file describing the run.")],
    as_json: JsonFlag = False,
) -> None:
    """Run a team from a file, e.g. {"team": "evolution", "task": "...", "docs": [...], "approve": "yes"}
    (approve: yes approves LOW risk only)."""
    from pathlib import Path

    with _service() as service:
        result = asyncio.run(service.arun_spec(Path(spec), on_event=None if as_json else _print_event))
    _print_json(result) if as_json else out.print(result, highlight=False)
    if result.get("status") == "rejected" or result.get("healed") is False:
        raise typer.Exit(1)


@app.command("mcp")
def mcp_serve(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default: EVORAG_MCP_HOST, 127.0.0.1).")]
    = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="HTTP port (default: EVORAG_MCP_PORT, 8848).")]
    = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Serve HTTP without a bearer token (loopback only).")
    ] = False,
) -> None:
    """Serve evorag to MCP clients: stdio by default (stdout is the protocol, logs go to stderr).

    Over HTTP each bearer token is a principal (`evorag users add`; with no users, EVORAG_MCP_TOKEN is one
    admin). Over stdio the client, started by an assistant a model drives, acts with EVORAG_MCP_LOCAL_ROLE
    (default operator), never as proof of a person."""
    from evorag.mcp_server import run_http, run_stdio

    with _service() as service:
        if http:
            run_http(service, host=host, port=port, insecure_no_auth=insecure_no_auth)
        else:
            run_stdio(service)


@app.command("ui")
def ui_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: EVORAG_UI_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: EVORAG_UI_PORT, 8000).")]
    = None,
) -> None:
    """Serve the chat UI (Chainlit): users log in with the password of `evorag users add NAME --role ROLE
    --password`, or as the admin EVORAG_UI_USER / EVORAG_UI_PASSWORD."""
    from evorag.settings import load_settings
    from evorag.ui import run_ui

    run_ui(load_settings(), host=host, port=port)


@app.command("agents-host")
def agents_host(
    host: Annotated[str, typer.Option(help="Bind address; a non-loopback one needs --insecure-remote.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port, printed).")] = 50051,
    insecure_remote: Annotated[
        bool, typer.Option("--insecure-remote", help="Allow a non-loopback address: the gRPC is unauthenticated "
                           "and unencrypted, use only on a private network or behind a tunnel.")
    ] = False,
) -> None:
    """Serve AutoGen's gRPC agent runtime host; point EVORAG_AGENT_RUNTIME_HOST at it to run teams through it."""
    from evorag.teams._distributed import serve_host

    def ready(address: str) -> None:
        err.print(f"agent runtime host listening on {address} (Ctrl-C stops it)", highlight=False, markup=False)

    serve_host(host, port, insecure_remote=insecure_remote, on_ready=ready)


@app.command("agents-worker")
def agents_worker(
    names: Annotated[list[str], typer.Argument(
        help="Conversation-team agents to serve: orchestrator, dependency_validator, code_debugger, "
        "integration_tester.")],
) -> None:
    """Serve conversation-team agents to the teams of EVORAG_AGENT_RUNTIME_HOST, with this machine's model and tools."""
    from evorag.teams._conversation import serve_conversation_agents

    def ready(address: str) -> None:
        err.print(f"serving {', '.join(names)} through {address} (Ctrl-C stops it)", highlight=False, markup=False)

    with _service() as service:
        asyncio.run(serve_conversation_agents(service, names, on_ready=ready))


@app.command("backup")
def backup_cmd(
    dest: Annotated[str, typer.Argument(help="The .tar.gz file to write.")],
    include_secret: Annotated[bool, typer.Option(
        "--include-secret",
        help="SENSITIVE: also store the manifest chain key, so that `restore --use-backup-secret` on another "
        "home keeps the deployed tools as verified. Whoever holds such a backup can make tools look verified: "
        "keep it like a password (the file is written 0600).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Back up EVORAG_HOME (index, catalog, metrics, approvals, plugins history, audit log)."""
    from pathlib import Path

    from evorag.tools.backup import backup

    _require("backup")
    with _service() as service:
        manifest = backup(service, Path(dest), include_secret=include_secret)
    if as_json:
        _print_json(manifest)
        return
    out.print(f"wrote {manifest['path']} ({manifest['bytes']} bytes): {', '.join(manifest['parts'])}", markup=False)
    if include_secret:
        err.print("note: this backup holds the manifest chain key; keep it as safe as a password", markup=False)


@app.command("restore")
def restore_cmd(
    archive: Annotated[str, typer.Argument(help="A backup written by `evorag backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty EVORAG_HOME.")] = False,
    use_backup_secret: Annotated[bool, typer.Option(
        "--use-backup-secret",
        help="Verify the backup's tools with the key stored in it (`backup --include-secret`) instead of this "
        "home's key; only for a backup you made yourself.")] = False,
    no_gates: Annotated[bool, typer.Option(
        "--no-gates", help="Leave quarantined tools in EVORAG_HOME/quarantine instead of sending them through "
        "the gates to the approval queue now.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore EVORAG_HOME from a backup, re-verifying every deployed tool.

    A tool stays deployed only if the manifest chain written at deploy time vouches for it (checked with this
    home's key, or the backup's with --use-backup-secret). Any other tool is quarantined and goes back through
    the gates into the approval queue: it is never deployed by a restore.
    """
    from pathlib import Path

    from evorag.settings import load_settings
    from evorag.tools.archive_guard import ArchiveLimits
    from evorag.tools.backup import requeue_quarantined, restore

    _require("restore")
    settings = load_settings()
    limits = ArchiveLimits(max_bytes=settings.restore_max_bytes, max_member_bytes=settings.restore_max_member_bytes,
                           max_members=settings.restore_max_members)
    report = restore(Path(archive), settings.home, force=force, limits=limits, use_backup_secret=use_backup_secret)
    plugins = report["plugins"]
    if plugins["quarantined"] and not no_gates:
        with _service() as service:
            plugins["requeued"] = requeue_quarantined(service, report)
    if as_json:
        _print_json(report)
        return
    _print_restore(report)


def _print_restore(report: dict) -> None:
    from evorag.terminal import strip_control

    plugins = report["plugins"]
    out.print(f"restored {', '.join(report['parts']) or 'nothing'} into {report['home']}", markup=False)
    if plugins["verified"]:
        out.print(f"tools verified by the manifest chain ({plugins['key']} key): {', '.join(plugins['verified'])}",
                  markup=False)
    requeued = {item["tool"]: item for item in plugins.get("requeued", [])}
    for item in plugins["quarantined"]:
        line = f"quarantined {item['tool']}: {item['reason']}"
        after = requeued.get(item["tool"])
        if after is None:
            line += f"; its code is in {item['path']} (re-add it with `evorag tools add`)"
        elif after["status"] == "pending":
            line += f"; passed the gates, waiting for approval {after['approval_id']} (risk {after['risk']})"
        elif after["status"] == "rejected":
            line += f"; rejected by the {after['gate']} gate: {after['reason']}"
        else:
            line += f"; {after['status']}: {after['reason']} (code in {after['path']})"
        out.print(strip_control(line), markup=False, highlight=False)


@app.command()
def config(as_json: JsonFlag = False) -> None:
    """Show the effective settings (secrets masked) and where they come from."""
    from evorag.settings import config_file_candidates, load_settings

    _require("settings")
    settings = load_settings()
    data = json.loads(settings.model_dump_json())
    data["config_files"] = [str(p) for p in config_file_candidates() if p.is_file()]
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        out.print(f"{key} = {value}", highlight=False, markup=False)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="reader, operator, approver or admin.")],
    password: Annotated[bool, typer.Option(
        "--password", help="Also set a UI login password (asked twice, never echoed).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a user; prints their MCP bearer token once (only its hash is kept)."""
    from evorag.principals import Role, validate_name

    _require("users")
    validate_name(name)
    parsed = Role.parse(role)
    secret = _new_password(name) if password else None
    with _service() as service:
        token = service.principals.add(name, parsed, password=secret)
    if as_json:
        _print_json({"name": name, "role": str(parsed), "ui_login": secret is not None, "token": token})
        return
    out.print(f"added {name} ({parsed})", markup=False)
    out.print(f"token: {token}", markup=False, highlight=False)
    err.print("the token is shown only now: give it to the user (MCP clients send it as 'Authorization: Bearer "
              "TOKEN')", markup=False)


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Users with their role and whether they can log in to the UI (never their secrets)."""
    import datetime as dt

    _require("users")
    with _service() as service:
        records = service.principals.users()
    if as_json:
        _print_json([r.to_dict() for r in records])
        return
    if not records:
        out.print("No users yet. Add one with `evorag users add NAME --role ROLE`.")
    for r in records:
        rotated = dt.datetime.fromtimestamp(r.token_rotated_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        out.print(f"{r.name}  {r.role}  ui login: {'yes' if r.has_password else 'no'}  token from {rotated} UTC",
                  markup=False, highlight=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The user to remove.")], as_json: JsonFlag = False) -> None:
    """Remove a user: their token and UI login stop working at once, also in running servers."""
    _require("users")
    with _service() as service:
        service.principals.remove(name)
    _print_json({"removed": name}) if as_json else out.print(f"removed {name}", markup=False)


@users_app.command("token")
def users_token(name: Annotated[str, typer.Argument(help="The user.")], as_json: JsonFlag = False) -> None:
    """Rotate a user's token: prints the new one once; the old one stops working at once."""
    _require("users")
    with _service() as service:
        token = service.principals.rotate_token(name)
    _print_json({"name": name, "token": token}) if as_json else out.print(f"token: {token}", markup=False,
                                                                          highlight=False)


@users_app.command("password")
def users_password(name: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Set or change a user's UI login password (asked twice, never echoed)."""
    _require("users")
    with _service() as service:
        if service.principals.get(name) is None:
            from evorag.errors import NotFoundError

            raise NotFoundError(f"no user named {name!r}", hint="see `evorag users list`")
        service.principals.set_password(name, _new_password(name))
    out.print(f"password of {name} set", markup=False)


def _new_password(name: str) -> str:
    from evorag.errors import UserError
    from evorag.principals import validate_password

    first = validate_password(_read_secret(f"UI password for {name} (not echoed): "))
    if _read_secret("again: ") != first:
        raise UserError("the two passwords differ", hint="run the command again")
    return first


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user-facing errors become one line on stderr and an exit code."""
    if argv is None:  # a real `evorag` process, not a call from Python: see evorag/approval_token.py
        from evorag.approval_token import reexec_without_token

        reexec_without_token(sys.argv[1:])
    try:
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        result = app(args=argv, standalone_mode=False)
    except EvoragError as exc:
        err.print(f"[bold red]error:[/] {esc(strip_control(exc.message))}", highlight=False)
        if exc.hint:
            err.print(f"  hint: {exc.hint}", highlight=False, markup=False)
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        return 130
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130
    except (click.exceptions.Exit, typer.Exit) as exc:
        return getattr(exc, "exit_code", 1)
    except (click.ClickException, typer.TyperException) as exc:
        # typer vendors its own click: usage errors come as either family.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        return getattr(exc, "exit_code", 2)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
