"""A self-contained HTML report of a usage analysis (evorag.tools.usage_analysis): the topics as an inline SVG
bar chart (this period against the previous one), then tables of topics, weak topics with their queries, missing
capabilities and tools. Like metrics_html: no scripts, fonts or images fetched; every text is escaped (queries are
whatever users typed)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from evorag.tools.usage_analysis import UsageAnalysis

from evorag.errors import UserError

CHART_TOPICS = 15
_BAR_H, _GAP, _LABEL_W, _BAR_W = 14, 10, 260, 340

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 20px 0 4px; }
svg { background: #fafbfc; border: 1px solid #d0d7de; }
.now { fill: #0969da; } .before { fill: #afb8c1; } .label { font-size: 11px; fill: #1f2328; }
.count { font-size: 10px; fill: #57606a; }
table { border-collapse: collapse; margin-top: 8px; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #57606a; font-style: italic; } ul { margin: 2px 0; padding-left: 18px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{round(value * 100)}%"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _chart(analysis: UsageAnalysis) -> str:
    topics = analysis.topics[:CHART_TOPICS]
    if not topics:
        return '<p class="empty">No queries in this period.</p>'
    top = max(max(t.volume, t.previous_volume) for t in topics) or 1
    row = 2 * _BAR_H + _GAP
    height = row * len(topics) + _GAP
    width = _LABEL_W + _BAR_W + 40
    svg = (f'<svg role="img" aria-label="queries per topic" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">')
    parts = [svg]
    for i, topic in enumerate(topics):
        y = _GAP + i * row
        label = topic.label if len(topic.label) <= 42 else topic.label[:41] + "…"
        parts.append(f'<text class="label" x="4" y="{y + _BAR_H + 3}">{_e(label)}</text>')
        for j, (value, css) in enumerate(((topic.volume, "now"), (topic.previous_volume, "before"))):
            w = max(1.0, _BAR_W * value / top) if value else 0
            parts.append(f'<rect class="{css}" x="{_LABEL_W}" y="{y + j * _BAR_H}" width="{w:.1f}" '
                         f'height="{_BAR_H - 2}"><title>{_e(value)}</title></rect>')
            parts.append(f'<text class="count" x="{_LABEL_W + w + 4:.1f}" y="{y + j * _BAR_H + _BAR_H - 4}">'
                         f'{_e(value)}</text>')
    parts.append("</svg>")
    return "".join(parts) + '<p class="count">blue: this period; grey: the previous period of the same length</p>'


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _td(value: object, *, num: bool = False) -> str:
    return f'<td class="num">{_e(value)}</td>' if num else f"<td>{_e(value)}</td>"


def _list(items: list[str]) -> str:
    return "<td><ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul></td>"


def render_usage_html(analysis: UsageAnalysis) -> str:
    totals = analysis.totals
    topics = [[_td(t.id, num=True), _td(t.label), _td(", ".join(t.terms)), _td(t.volume, num=True),
               _td(t.previous_volume, num=True), _td(t.trend), _td(_num(t.quality), num=True),
               _td(_share(t.answered_share), num=True), _td(t.rephrasings, num=True), _td(t.principals, num=True)]
              for t in analysis.topics]
    weak = [[_td(_num(w.score), num=True), _td(w.topic.label), _td(w.topic.volume, num=True),
             _td(_num(w.impact), num=True), _list(w.reasons), _list([e["query"] for e in w.evidence[:8]])]
            for w in analysis.weak_topics]
    missing = [[_td(_num(m.score), num=True), _td(m.kind), _td(m.label), _td(m.count, num=True),
                _td(_share(m.impact), num=True), _list(m.evidence[:5])] for m in analysis.missing_capabilities]
    tools = [[_td(t["tool"]), _td(t["calls"], num=True), _td(t["errors"], num=True),
              _td(_num(t["mean_latency_ms"], 0), num=True)] for t in analysis.tools]
    interfaces = ", ".join(f"{k} {v}" for k, v in totals.get("by_interface", {}).items()) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evorag usage</title><style>{_STYLE}</style></head><body>
<h1>evorag usage, {_e(_when(analysis.since))} to {_e(_when(analysis.until))}</h1>
<p>{_e(totals.get("queries", 0))} queries ({_e(totals.get("searches", 0))} searches, {_e(totals.get("asks", 0))}
answers, {_e(totals.get("errors", 0))} failed) by interface: {_e(interfaces)}; mean latency
{_e(_num(totals.get("mean_latency_ms"), 0))} ms; {_e(totals.get("evolution_requests", 0))} evolution requests.</p>
<h2>Topics</h2>
{_chart(analysis)}
{_table(["#", "topic (most central query)", "terms", "queries", "before", "trend", "quality", "from the docs",
         "rephrasings", "people"], topics, "No queries in this period.")}
<h2>Weak topics (volume x impact)</h2>
{_table(["score", "topic", "queries", "impact", "why", "queries asked"], weak, "No weak topics.")}
<h2>Missing capabilities (failures x share failed)</h2>
{_table(["score", "kind", "what", "failures", "failed", "evidence"], missing, "Nothing asked for was missing.")}
<h2>Deployed tools called</h2>
{_table(["tool", "calls", "errors", "mean ms"], tools, "No tool calls in this period.")}
</body></html>
"""


def write_usage_html(analysis: UsageAnalysis, path: Path) -> Path:
    """Write the report to ``path`` (its folder must exist); UserError when it cannot be written."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:
        path.write_text(render_usage_html(analysis), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
