"""``evorag usage``: what was asked through every interface, grouped into topics, with the weak topics and the
capabilities people asked for that evorag lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, app, err, out, print_json, service, spinner
from evorag.terminal import strip_control


def _short(text: str, width: int = 60) -> str:
    text = strip_control(text)
    return esc(text if len(text) <= width else text[: width - 1] + "…")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{round(value * 100)}%"


@app.command()
def usage(
    since: Annotated[str, typer.Option(help="Start of the period: a span back from now (30m, 24h, 7d, 2w), a date "
                                       "(2024-05-01) or a time (2024-05-01T12:00Z).")] = "7d",
    html: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML report to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Usage analysis: topics of the questions asked (by the embedder), their volume, trend, answer quality and
    share answered from the docs; weak topics and missing capabilities, ranked by frequency x impact."""
    with service() as rag, spinner("analysing the usage log", enabled=not as_json):
        report = rag.usage_report(since=since, html=html)
    if report.html is not None:
        err.print(f"wrote {report.html}", markup=False)
    if as_json:
        print_json(report.to_dict())
        return
    analysis = report.analysis
    totals = analysis.totals
    interfaces = ", ".join(f"{name} {count}" for name, count in totals["by_interface"].items()) or "none"
    out.print(f"{totals['queries']} queries ({totals['searches']} searches, {totals['asks']} answers, "
              f"{totals['errors']} failed; {interfaces}), {totals['evolution_requests']} evolution requests",
              highlight=False)
    if analysis.topics:
        table = Table("#", "topic", "terms", "queries", "before", "trend", "quality", "from docs", "rephrased",
                      "rated up/down")
        for t in analysis.topics:
            table.add_row(str(t.id), _short(t.label), esc(", ".join(t.terms)), str(t.volume), str(t.previous_volume),
                          t.trend, _num(t.quality), _share(t.answered_share), str(t.rephrasings),
                          f"{t.thumbs_up}/{t.thumbs_down}" if t.thumbs_up or t.thumbs_down else "-")
        out.print(table)
    if analysis.weak_topics:
        table = Table("score", "weak topic", "queries", "impact", "why", title="weak topics (volume x impact)")
        for w in analysis.weak_topics:
            table.add_row(_num(w.score), _short(w.topic.label), str(w.topic.volume), _num(w.impact),
                          esc("; ".join(w.reasons)))
        out.print(table)
    else:
        out.print("weak topics: none", highlight=False)
    if analysis.missing_capabilities:
        table = Table("score", "kind", "missing", "failures", "failed", title="missing capabilities")
        for m in analysis.missing_capabilities:
            table.add_row(_num(m.score), m.kind, _short(m.label), str(m.count), _share(m.impact))
        out.print(table)
    else:
        out.print("missing capabilities: none", highlight=False)
