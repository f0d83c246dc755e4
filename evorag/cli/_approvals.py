"""Approvals and users: list and decide pending changes; add, list, remove users, rotate tokens, passwords."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer

from evorag.cli._app import JsonFlag, approvals_app, err, out, print_json, read_secret, service, users_app
from evorag.errors import UserError
from evorag.principals import validate_password
from evorag.service import ApprovalRequest


@approvals_app.callback()
def approvals(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List pending approvals."""
    if ctx.invoked_subcommand is not None:
        return
    with service() as rag:
        pending = rag.pending_approvals()
    if as_json:
        print_json([p.to_dict() for p in pending])
        return
    if not pending:
        out.print("Nothing is waiting for approval.")
    for p in pending:
        out.print(f"{p.id}  {p.risk:6}  {p.tool}: {p.summary}", highlight=False, markup=False)


def _ask_token(request: ApprovalRequest) -> str:
    # Asking is a convenience for the person; their proof is the token, not the terminal.
    if not sys.stdin.isatty():
        return ""
    return read_secret(f"{request.id} is {request.risk} risk: human approval token (not echoed): ")


def _decide(approval_id: str, approve: bool, token: str | None, reason: str, as_json: bool) -> None:
    with service() as rag:
        result = rag.decide_approval(approval_id, approve=approve, token=token or None, reason=reason,
                                     ask_token=_ask_token)
    data = result.to_dict()
    if as_json:
        print_json(data)
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


def _new_password(name: str):
    """Asks for a UI password twice (never echoed) when the service calls it."""
    def ask() -> str:
        first = validate_password(read_secret(f"UI password for {name} (not echoed): "))
        if read_secret("again: ") != first:
            raise UserError("the two passwords differ", hint="run the command again")
        return first

    return ask


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="reader, operator, approver or admin.")],
    password: Annotated[bool, typer.Option(
        "--password", help="Also set a UI login password (asked twice, never echoed).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a user; prints their MCP bearer token once (only its hash is kept)."""
    with service() as rag:
        added = rag.add_user(name, role, password=_new_password(name) if password else None)
    if as_json:
        print_json(added.to_dict())
        return
    out.print(f"added {added.name} ({added.role})", markup=False)
    out.print(f"token: {added.token}", markup=False, highlight=False)
    err.print("the token is shown only now: give it to the user (MCP clients send it as 'Authorization: Bearer "
              "TOKEN')", markup=False)


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Users with their role and whether they can log in to the UI (never their secrets)."""
    with service() as rag:
        records = rag.users()
    if as_json:
        print_json([r.to_dict() for r in records])
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
    with service() as rag:
        rag.remove_user(name)
    print_json({"removed": name}) if as_json else out.print(f"removed {name}", markup=False)


@users_app.command("token")
def users_token(name: Annotated[str, typer.Argument(help="The user.")], as_json: JsonFlag = False) -> None:
    """Rotate a user's token: prints the new one once; the old one stops working at once."""
    with service() as rag:
        rotated = rag.rotate_token(name)
    if as_json:
        print_json({"name": name, "token": rotated.token})
    else:
        out.print(f"token: {rotated.token}", markup=False, highlight=False)


@users_app.command("password")
def users_password(name: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Set or change a user's UI login password (asked twice, never echoed)."""
    with service() as rag:
        rag.set_user_password(name, _new_password(name))
    out.print(f"password of {name} set", markup=False)
