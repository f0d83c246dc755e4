"""The request queue and the scheduler: list and cancel queued requests, serve the queue headless, and the
per-source refresh schedules (``evorag sources schedule``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, app, err, out, print_json, service, sources_app
from evorag.service import QueueRequest, Schedule

queue_app = typer.Typer(help="The request queue: crawls, refreshes, evolutions, heals and periodic tasks, in the "
                        "order workers take them (a server runs them: `evorag serve` or `evorag mcp --http`).",
                        invoke_without_command=True)
app.add_typer(queue_app, name="queue")


def _when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds") if timestamp else "-"


def _state(request: QueueRequest) -> str:
    """What a request is doing, in a few words: its place in line, its progress, or how it ended."""
    if request.status == "queued":
        return f"#{request.position} in line" + (f"; {request.note}" if request.note else "")
    if request.status == "running":
        progress = ", ".join(f"{key} {value}" for key, value in list(request.progress.items())[:4])
        return f"since {_when(request.started_at)}" + (f": {progress}" if progress else "")
    if request.status == "done":
        return f"at {_when(request.finished_at)}"
    return f"at {_when(request.finished_at)}: {request.error or '-'}"


@queue_app.callback()
def queue(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Also list finished requests (newest first).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many requests.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List the requests running and waiting (with --all also the finished ones): running first, then the
    queued ones in the order they will run."""
    if ctx.invoked_subcommand is not None:
        return
    with service() as rag:
        requests = rag.queue_requests(finished=show_all, limit=limit)
    if as_json:
        print_json([request.to_dict() for request in requests])
        return
    if not requests:
        out.print("The queue is empty." if show_all else "Nothing is queued or running (--all lists finished "
                  "requests).")
        return
    table = Table()
    # The id is what `evorag queue cancel` needs: never shortened, whatever the terminal's width.
    table.add_column("id", no_wrap=True, min_width=12)
    for name in ("status", "priority", "kind"):
        table.add_column(name, no_wrap=True)
    for name in ("what", "asked by", "state"):
        table.add_column(name)
    for request in requests:
        table.add_row(request.id, request.status, str(request.priority), esc(request.kind), esc(request.summary),
                      esc(request.requested_by), esc(_state(request)))
    out.print(table)


@queue_app.command("show")
def queue_show(
    request_id: Annotated[str, typer.Argument(help="The request id (from `evorag queue`).")],
    as_json: JsonFlag = False,
) -> None:
    """One request as it is now: its place in line while queued, its progress while running, its result or
    the reason it failed."""
    with service() as rag:
        request = rag.queue_request(request_id)
    if as_json:
        print_json(request.to_dict())
        return
    out.print(f"{request.id}  {request.status}  {request.kind}: {request.summary}", highlight=False, markup=False)
    out.print(f"  asked by {request.requested_by} ({request.origin}), priority {request.priority}, "
              f"submitted {_when(request.created_at)}, attempts {request.attempts}", highlight=False, markup=False)
    out.print(f"  {_state(request)}", highlight=False, markup=False)
    if request.error_hint:
        out.print(f"  hint: {request.error_hint}", highlight=False, markup=False)


@queue_app.command("cancel")
def queue_cancel(
    request_id: Annotated[str, typer.Argument(help="The request id (from `evorag queue`).")],
    as_json: JsonFlag = False,
) -> None:
    """Cancel a queued request, or stop a running one (in whichever process runs it; a crawl keeps the pages
    it indexed). Needs the operator role."""
    with service() as rag:
        request = rag.cancel_request(request_id)
    if as_json:
        print_json(request.to_dict())
        return
    if request.status == "cancelled":
        out.print(f"{request.id} cancelled ({request.kind}: {request.summary})", highlight=False, markup=False)
    else:
        out.print(f"{request.id} is running: asked to stop ({request.kind}: {request.summary})", highlight=False,
                  markup=False)


@app.command("serve")
def serve(
    workers: Annotated[int | None, typer.Option(min=1, max=16, help="Queue workers (default: "
                                                "EVORAG_QUEUE_WORKERS, 2).")] = None,
) -> None:
    """Run the scheduler and the queue's workers without a user interface, until Ctrl-C or SIGTERM: due
    source refreshes and periodic tasks are queued and run, and so is anything submitted to the queue.
    Requests still running at the stop go back to the queue for the next server."""
    with service() as rag:
        asyncio.run(_serve(rag, workers))
    err.print("stopped; unfinished requests wait in the queue", highlight=False, markup=False)


async def _serve(rag, workers: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform / thread
            loop.add_signal_handler(signum, stop.set)

    def ready(what: str) -> None:
        err.print(f"serving {what} (Ctrl-C stops it)", highlight=False, markup=False)

    await rag.aserve(stop, workers=workers, on_ready=ready)


# Per-source refresh schedules


def _schedule_row(schedule: Schedule) -> dict:
    return {"source": schedule.subject, "schedule": schedule.spec, "next_run": _when(schedule.next_due),
            "next_run_at": schedule.next_due, "last_request": schedule.last_request,
            "last_submitted": _when(schedule.last_submitted_at), "last_status": schedule.last_status,
            "last_finished": _when(schedule.last_finished_at), "last_error": schedule.last_error}


@sources_app.command("schedule")
def sources_schedule(
    name: Annotated[str, typer.Argument(help="The source to refresh.")],
    spec: Annotated[str, typer.Argument(metavar="SCHEDULE", help='When, in UTC: "hourly", "daily", "weekly", '
                                        '"every 6h" / "every 30m" / "every 2d", or a cron expression such as '
                                        '"0 3 * * *".')],
    as_json: JsonFlag = False,
) -> None:
    """Refresh a source on a schedule (replacing its schedule): a server (`evorag serve` or `evorag mcp --http`)
    queues each refresh, which re-crawls the source as its last crawl did and records a change
    report (`evorag sources changes NAME`). Needs the operator role."""
    with service() as rag:
        schedule = rag.schedule_source(name, spec)
    if as_json:
        print_json(_schedule_row(schedule))
        return
    out.print(f"{schedule.subject} refreshes {schedule.spec} (UTC); next run {_when(schedule.next_due)}",
              highlight=False, markup=False)


@sources_app.command("unschedule")
def sources_unschedule(name: Annotated[str, typer.Argument(help="The source.")]) -> None:
    """Stop refreshing a source on a schedule (a refresh already queued stays: `evorag queue cancel`)."""
    with service() as rag:
        removed = rag.unschedule_source(name)
    out.print(f"{name} is no longer refreshed on a schedule" if removed else f"{name} had no schedule",
              highlight=False, markup=False)


@sources_app.command("schedules")
def sources_schedules(as_json: JsonFlag = False) -> None:
    """The sources refreshed on a schedule: when next, and how the last refresh went."""
    with service() as rag:
        schedules = sorted(rag.source_schedules().values(), key=lambda s: s.subject or "")
    rows = [_schedule_row(schedule) for schedule in schedules]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No source is refreshed on a schedule. Set one with `evorag sources schedule NAME daily`.")
        return
    table = Table("source", "schedule", "next run (UTC)", "last refresh", "status")
    now = time.time()
    for row, schedule in zip(rows, schedules, strict=True):
        overdue = " (due)" if schedule.next_due <= now else ""
        status = row["last_status"] or "-"
        if row["last_error"]:
            status += f": {row['last_error']}"
        table.add_row(esc(row["source"] or "-"), esc(row["schedule"]), row["next_run"] + overdue,
                      row["last_submitted"], esc(status))
    out.print(table)
