"""`evorag webhooks`: signed notifications of events (approval pending, deploy, rollback, anomaly, proposal,
crawl finished) to URLs; see evorag.tools.webhooks for the signature and the retry rules."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, app, err, out, print_json, service
from evorag.tools.webhook_events import EVENTS

webhooks_app = typer.Typer(
    help="Webhooks: JSON POSTs signed with HMAC-SHA256 (header X-Evorag-Signature over timestamp + '.' + body), "
    "retried with backoff, disabled after repeated failures until enabled again. Needs the admin role.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http or https).")],
    events: Annotated[str, typer.Option(help=f"Comma-separated events: {', '.join(EVENTS)}.")],
    allow_private: Annotated[bool, typer.Option(
        "--allow-private", help="Allow a private, loopback or link-local address (a receiver on this network).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register a webhook; prints its signing secret, this once only."""
    with service() as rag:
        hook, secret = rag.add_webhook(url, events.split(","), allow_private=allow_private)
    if as_json:
        print_json({**hook.to_dict(), "secret": secret})
        return
    out.print(f"added webhook {hook.id} for {', '.join(hook.events)} -> {esc(hook.url)}", highlight=False)
    out.print(f"secret (shown once; verify X-Evorag-Signature with it): {secret}", highlight=False, markup=False)


@webhooks_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """The registered webhooks (without their secrets)."""
    with service() as rag:
        hooks = rag.list_webhooks()
    if as_json:
        print_json([hook.to_dict() for hook in hooks])
        return
    if not hooks:
        out.print("No webhooks. Add one with `evorag webhooks add URL --events ...`.")
        return
    table = Table("id", "url", "events", "enabled", "failures", "added")
    for hook in hooks:
        state = "yes" if hook.enabled else f"no ({hook.disabled_reason or 'disabled'})"
        table.add_row(hook.id, esc(hook.url), ", ".join(hook.events), esc(state), str(hook.failures),
                      _when(hook.created_at))
    out.print(table)


@webhooks_app.command("enable")
def enable(hook_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Enable a webhook again (after it was disabled for failing)."""
    with service() as rag:
        hook = rag.enable_webhook(hook_id)
    if as_json:
        print_json(hook.to_dict())
    else:
        out.print(f"enabled webhook {hook.id}", highlight=False)


@webhooks_app.command("remove")
def remove(hook_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Remove a webhook (its delivery log stays)."""
    with service() as rag:
        rag.remove_webhook(hook_id)
    err.print(f"removed webhook {hook_id}", highlight=False, markup=False)


@webhooks_app.command("log")
def log(
    hook_id: Annotated[str | None, typer.Option("--id", help="Only this webhook's deliveries.")] = None,
    last: Annotated[int, typer.Option(min=1, max=10_000, help="The newest N attempts.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The delivery log: every attempt, its HTTP status or error."""
    with service() as rag:
        attempts = rag.webhook_log(hook_id=hook_id, last=last)
    if as_json:
        print_json([attempt.to_dict() for attempt in attempts])
        return
    if not attempts:
        out.print("No deliveries yet.")
        return
    table = Table("when", "webhook", "event", "delivery", "try", "result", "seconds")
    for a in attempts:
        result = "ok" if a.ok else (a.error or "failed")
        table.add_row(_when(a.at), a.hook_id, a.event, a.delivery_id, str(a.attempt), esc(result), f"{a.seconds:.2f}")
    out.print(table)
