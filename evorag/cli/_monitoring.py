"""Monitoring commands: anomalies in the answer history, model costs, the status of the home."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, app, out, print_json, service
from evorag.terminal import strip_control


@app.command()
def anomalies(
    last: Annotated[int, typer.Option(min=1, max=100_000, help="Scan the newest N answers.")] = 2000,
    warmup: Annotated[int, typer.Option(min=8, max=10_000, help="Answers each metric learns from first.")] = 48,
    notify: Annotated[bool, typer.Option(
        "--notify", help="Send alerts not sent before to the webhooks subscribed to `anomaly`, and propose a heal "
        "run for each one a health check can explain.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Anomalies (spikes, shifts, drifts) in answer quality, grounding, retrieval nDCG and latency."""
    with service() as rag:
        report = rag.anomalies(last=last, warmup=warmup, notify=notify)
    if as_json:
        print_json(report.to_dict())
        return
    learning = [name for name, count in report.values.items() if count < report.warmup]
    if not report.alerts:
        out.print(f"No anomalies in the last {report.records} answers.")
    else:
        table = Table("metric", "kind", "direction", "value", "expected", "z", "record", "when", "query")
        for alert in report.alerts:
            when = (dt.datetime.fromtimestamp(alert.created_at, dt.UTC).strftime("%m-%d %H:%M")
                    if alert.created_at else "-")
            table.add_row(alert.metric, alert.kind, alert.direction, f"{alert.value:.3g}", f"{alert.expected:.3g}",
                          f"{alert.z:+.1f}", str(alert.record_id or "-"), when,
                          esc(strip_control(alert.query)[:40]))
        out.print(table)
    if learning:
        out.print(f"still learning (fewer than {report.warmup} values): {', '.join(learning)}")
    if report.heal_proposals:
        out.print(f"heal proposals waiting for approval (`evorag proposals`): {', '.join(report.heal_proposals)}")


@app.command()
def costs(
    day: Annotated[str | None, typer.Option(help="The UTC day, YYYY-MM-DD (default: today).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Model calls, tokens and cost of a day by principal, operation, model and agent, and the budget left."""
    with service() as rag:
        report = rag.costs(day=day)
    if as_json:
        print_json(report.to_dict())
        return
    budget = (f" of ${report.budget_usd:.2f} (${report.remaining_usd:.4f} left)" if report.budget_usd is not None
              else " (no daily budget)")
    out.print(f"{report.day} (UTC): {report.calls} model calls, {report.prompt_tokens} prompt + "
              f"{report.completion_tokens} completion tokens, ${report.total_usd:.4f}{budget}", highlight=False)
    for title, rows in (("principal", report.by_principal), ("operation", report.by_operation),
                        ("model", report.by_model), ("agent", report.by_agent)):
        if not rows or (title == "agent" and all(r.key == "-" for r in rows)):
            continue
        table = Table(title, "calls", "failed", "prompt", "completion", "cost $", "mean s", "unpriced")
        for r in rows:
            table.add_row(esc(r.key), str(r.calls), str(r.failed), str(r.prompt_tokens), str(r.completion_tokens),
                          f"{r.cost_usd:.4f}", "-" if r.mean_seconds is None else f"{r.mean_seconds:.2f}",
                          str(r.unpriced_calls))
        out.print(table)
    if any(r.unpriced_calls for r in report.by_model):
        out.print("models without a price count 0 $: set EVORAG_MODEL_PRICES", highlight=False)


@app.command()
def status(
    days: Annotated[int, typer.Option(min=1, max=90, help="Evolutions, agents and cost by day over the last N "
                                                         "UTC days (today included).")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """CPU, memory, disk, the request queue, schedules and their last runs, today's model cost, recent anomalies,
    the evolutions' success rate and the agents' latency and tokens."""
    with service() as rag:
        report = rag.status(days=days)
    if as_json:
        print_json(report.to_dict())
        return
    r = report.resources
    out.print(f"cpu {r['cpu_percent']:.0f}% of {r['cpu_count']} cores (load {r['load_1m']:.2f}), memory available {r['memory_available_mb']} MB, "
              f"disk free {r['disk_free_mb']} MB", highlight=False)
    queue = ("unknown" if report.queue_waiting is None
             else f"{report.queue_waiting} waiting, {report.queue_running} running")
    out.print(f"queue: {queue}", highlight=False)
    budget = (f" of ${report.budget_usd:.2f}, ${report.budget_left_usd:.4f} left" if report.budget_usd is not None
              else "")
    out.print(f"cost today: ${report.cost_today_usd:.4f}{budget} ({report.model_calls_today} model calls)",
              highlight=False)
    _print_schedules(report.schedules)
    evolutions = report.evolutions
    rate = "-" if evolutions.success_rate is None else f"{evolutions.success_rate:.0%}"
    counts = ", ".join(f"{count} {name}" for name, count in evolutions.by_status.items())
    out.print(f"evolutions (last {report.window_days} days): {evolutions.finished} finished"
              + (f" ({counts})" if counts else "") + f", success rate {rate}", highlight=False)
    if report.agents:
        table = Table("agent", "calls", "failed", "prompt tokens", "completion tokens", "mean s",
                      title=f"agents (last {report.window_days} days)")
        for r in report.agents:
            table.add_row(esc(r.key), str(r.calls), str(r.failed), str(r.prompt_tokens), str(r.completion_tokens),
                          "-" if r.mean_seconds is None else f"{r.mean_seconds:.2f}")
        out.print(table)
    else:
        out.print(f"agents (last {report.window_days} days): no model calls", highlight=False)
    if report.recent_anomalies:
        out.print(f"recent anomalies ({len(report.recent_anomalies)}; `evorag anomalies` lists them):", highlight=False)
        for alert in report.recent_anomalies:
            out.print(f"  {alert.metric}: {alert.kind} {alert.direction}, {alert.value:.3g} against "
                      f"{alert.expected:.3g} (answer {alert.record_id})", highlight=False)
    else:
        out.print("recent anomalies: none", highlight=False)


def _print_schedules(schedules) -> None:
    if schedules is None:
        out.print("schedules: unknown", highlight=False)
        return
    if not schedules:
        out.print("schedules: none", highlight=False)
        return
    table = Table("schedule", "every", "next run (UTC)", "last run (UTC)", "last status", title="schedules")
    for s in schedules:
        last = s.last_finished_at or s.last_submitted_at
        status = s.last_status or ("-" if s.last_submitted_at is None else "pruned")
        if s.last_error:
            status += f": {strip_control(s.last_error)[:60]}"
        table.add_row(esc(s.name), esc(s.spec), _utc(s.next_due), _utc(last), esc(status))
    out.print(table)


def _utc(timestamp: float | None) -> str:
    return "-" if not timestamp else dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M")
