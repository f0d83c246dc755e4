"""Self-evolution commands: evolve, tools (add, list, docs, call), versions, rollback, heal, gaps, team runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape as esc

from evorag.cli._app import (
    YES_HELP,
    JsonFlag,
    app,
    approver,
    interactive,
    out,
    outcome_lines,
    print_event,
    print_json,
    service,
    team_app,
    tools_app,
)
from evorag.errors import UserError
from evorag.terminal import strip_control


@app.command()
def evolve(
    request: Annotated[str, typer.Argument(help="The capability you want, in plain words.")],
    docs: Annotated[list[str], typer.Option("--docs", help="Documentation URL to learn from (repeatable).")] = [],  # noqa: B006
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    team: Annotated[str | None, typer.Option(
        "--team", help="An evolution team of `evorag teams list`, e.g. a plugin's that adds a review step "
        "(default: EVORAG_EVOLUTION_TEAM, evolution).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Let the agent team build a new tool: plan, validate, generate, debug, test, approve, deploy."""
    with service() as rag:
        outcome = asyncio.run(rag.aevolve(request, docs=docs, approver=approver(yes, as_json), team=team,
                                          on_event=None if as_json else print_event))
    print_json(outcome.to_dict()) if as_json else outcome_lines(outcome)
    if outcome.status == "rejected":
        raise typer.Exit(1)


@tools_app.command("add")
def tools_add(
    path: Annotated[str, typer.Argument(help="Directory with tool.py, optional requirements.txt and test_*.py.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    request: Annotated[str, typer.Option(help="Why this tool is wanted (kept in the history).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Run a hand-written tool through the same gates as evolved ones; deploy it if approved."""
    with service() as rag:
        outcome = rag.add_tool(Path(path), request=request, approver=approver(yes, as_json))
    if as_json:
        print_json({"status": outcome.status, "gate": outcome.gate, "reason": outcome.reason,
                    "risk": outcome.risk, "tool": outcome.tool, "version": outcome.version_id,
                    "approval_id": outcome.approval_id, "run_id": outcome.run_id,
                    "verdicts": outcome.to_dict()["verdicts"]})
    else:
        outcome_lines(outcome)
    if outcome.status == "rejected":
        raise typer.Exit(1)


@tools_app.command("list")
def tools_list(as_json: JsonFlag = False) -> None:
    """Deployed tools with their version and risk."""
    with service() as rag:
        manifests = rag.tools()
    if as_json:
        print_json([m.to_dict() for m in manifests])
        return
    if not manifests:
        out.print("No evolved tools yet. Add one with `evorag tools add PATH` or `evorag evolve REQUEST`.")
    for m in manifests:
        out.print(f"[bold]{esc(m.name)}[/] {m.semantic_version()} ({esc(str(m.risk))}): "
                  f"{esc(m.summary())}")  # untrusted text: one safe line


@tools_app.command("docs")
def tools_docs() -> None:
    """Print the generated reference of every deployed tool (Markdown), then the changelog."""
    with service() as rag:
        sys.stdout.write(strip_control(rag.tool_docs()))


@tools_app.command("call")
def tools_call(
    name: Annotated[str, typer.Argument(help="Deployed tool name.")],
    arguments: Annotated[str, typer.Argument(help="Arguments as a JSON object.")] = "{}",
) -> None:
    """Call a deployed tool (it runs in the sandbox) and print its JSON result."""
    try:
        args = json.loads(arguments)
    except ValueError as exc:
        raise UserError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise UserError("arguments must be a JSON object", hint='e.g. \'{"text": "hello"}\'')
    with service() as rag:
        print_json(rag.call_tool(name, args))


@tools_app.command("retire")
def tools_retire(
    selector: Annotated[str, typer.Argument(help="A previous major version kept by a breaking redeploy: NAME@MAJOR.")],
    as_json: JsonFlag = False,
) -> None:
    """Retire a previous major version of a tool: callers that pinned it get 'not found' from now on."""
    with service() as rag:
        version = rag.retire_tool(selector)
    if as_json:
        print_json({"retired": selector, "version": version.to_dict()})
    else:
        out.print(f"retired {selector} (new checkpoint {version.id}); tools now: {', '.join(version.tools) or '-'}",
                  markup=False)


@tools_app.command("openapi")
def tools_openapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the document to this file "
                                                "(default: standard output).")] = None,
) -> None:
    """Write an OpenAPI 3.1 document of every deployed tool (one POST operation per tool and kept major)."""
    with service() as rag:
        document = rag.tools_openapi()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    out.print(f"wrote the OpenAPI document of {len(document['paths'])} tools to {output}", markup=False)


@app.command()
def versions(as_json: JsonFlag = False) -> None:
    """Checkpoints of the deployed tool set, oldest first."""
    with service() as rag:
        items = rag.versions()
    if as_json:
        print_json([v.to_dict() for v in items])
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
        if not interactive():
            raise UserError("rollback needs confirmation", hint="pass --yes in scripts")
        typer.confirm(f"Restore the tool set of {version_id}?", abort=True)
    with service() as rag:
        result = rag.rollback(version_id)
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(f"rolled back to {version_id} (new checkpoint {result.version.id}); tools now: "
                  f"{', '.join(result.version.tools) or '-'}", markup=False)


@app.command()
def heal(
    description: Annotated[str, typer.Argument(
        help="What seems wrong: the tools, sources or metrics it names are checked first (kept in the audit log)."
    )] = "health check",
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    as_json: JsonFlag = False,
) -> None:
    """Find what DESCRIPTION is about (tools, sources, metrics), run every check (those first), and fix failures
    through the same gates as evolutions; configuration findings propose the setting to change."""
    from evorag.teams._heal_targets import about_line

    with service() as rag:
        report = asyncio.run(rag.aheal(description, approver=approver(yes, as_json),
                                       on_event=None if as_json else print_event))
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(about_line(report.about), highlight=False, markup=False)
        for check in report.after or report.before:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            fix = f" (fix, {check.fix_kind}: {esc(check.fix)})" if not check.ok and check.fix else ""
            out.print(f"{mark} {esc(check.name)}: {esc(check.detail)}{fix}", highlight=False)
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
    with service() as rag:
        report = asyncio.run(rag.agaps(threshold=threshold, crawl=crawl, approver=approver(yes, as_json)))
    if as_json:
        print_json(report.to_dict() if crawl and report.proposals else [p.to_dict() for p in report.proposals])
        return
    if not report.proposals:
        out.print("No knowledge gaps found: no weak answers match links the crawls saw.")
    for p in report.proposals:
        out.print(f"{p.url}  (score {p.score:g}, linked from {p.found_in}) for: {'; '.join(p.queries)[:120]}",
                  markup=False, highlight=False)
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
    (approve: yes approves LOW risk only). The team may be any of `evorag teams list`, a plugin's included;
    a chat team takes the task as its message and "replies": [...] as your answers."""
    with service() as rag:
        result = asyncio.run(rag.arun_spec(Path(spec), on_event=None if as_json else print_event))
    print_json(result) if as_json else out.print(result, highlight=False)
    if result.get("status") == "rejected" or result.get("healed") is False:
        raise typer.Exit(1)
