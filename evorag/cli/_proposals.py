"""`evorag proposals`: crawl proposals for weak topics and tool proposals for missing features, each with the
queries behind it. They are decided in the approval queue (`evorag approvals approve|reject ID`); an approved
one runs through the request queue (`evorag queue`) and records its effect."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, app, out, print_json, service
from evorag.tools.proposals import Proposal

proposals_app = typer.Typer(
    help="Proposals from weak topics (crawl pages evorag knows of but has not indexed) and missing features "
    "(an evolution request). Decide them with `evorag approvals approve|reject APPROVAL_ID`.",
)
app.add_typer(proposals_app, name="proposals")


def _when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _table(proposals: list[Proposal]) -> Table:
    table = Table("id", "kind", "status", "score", "topic", "target", "evidence", "approval", "made")
    for p in proposals:
        table.add_row(p.id, p.kind, p.status, f"{p.score:g}", esc(p.topic), esc(p.target[:80]),
                      str(len(p.evidence)), p.approval_id or "-", _when(p.created_at))
    return table


@proposals_app.callback(invoke_without_command=True)
def proposals(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only proposals of this status: proposed, approved, "
                                                    "rejected, expired, done, failed.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the newest proposals."""
    if ctx.invoked_subcommand is not None:
        return
    with service() as rag:
        found = rag.list_proposals(status=status)
    if as_json:
        print_json([p.to_dict() for p in found])
    elif not found:
        out.print("No proposals. Make them with `evorag proposals make`.")
    else:
        out.print(_table(found))


@proposals_app.command("make")
def make(
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Answers scoring under this are weak.")] = 0.5,
    packages: Annotated[bool, typer.Option(help="Also match the documentation URLs of installed packages.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Analyse weak answers and failed evolutions, and submit the new proposals to the approval queue
    (operator role)."""
    with service() as rag:
        made = rag.make_proposals(threshold=threshold, packages=packages)
    if as_json:
        print_json([p.to_dict() for p in made])
    elif not made:
        out.print("Nothing new to propose.")
    else:
        out.print(_table(made))
        out.print("Decide them with `evorag approvals approve|reject APPROVAL_ID`.")


@proposals_app.command("show")
def show(proposal_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """One proposal: its targets and why, the evidence, and once done its effect (scores before and after)."""
    with service() as rag:
        proposal = rag.get_proposal(proposal_id)
    if as_json:
        print_json(proposal.to_dict())
        return
    out.print(f"{proposal.id}  {proposal.kind}  {proposal.status}  score {proposal.score:g}  topic "
              f"{proposal.topic}", highlight=False, markup=False)
    out.print(f"approval {proposal.approval_id or '-'}  request {proposal.request_id or '-'}", highlight=False)
    for reason in proposal.reasons:
        out.print(f"  {reason['url']}  ({reason['origin']} of {reason['found_in']}"
                  f"{', ' + reason['reason'] if reason.get('reason') else ''}; matched "
                  f"{', '.join(reason['matched_terms'])})", highlight=False, markup=False)
    if proposal.kind in ("tool", "heal"):
        out.print(proposal.request, highlight=False, markup=False)
    out.print("evidence:", highlight=False)
    for query in proposal.evidence:
        out.print(f"  - {query}", highlight=False, markup=False)
    if proposal.effect and "mean_before" in proposal.effect:
        out.print(f"before {proposal.effect['mean_before']}  after {proposal.effect['mean_after']}",
                  highlight=False, markup=False)
    elif proposal.effect and proposal.effect.get("heal_request"):
        out.print(f"heal request {proposal.effect['heal_request']} done: healed {proposal.effect.get('healed')}",
                  highlight=False, markup=False)
    if proposal.error:
        out.print(f"error: {proposal.error}", highlight=False, markup=False)
