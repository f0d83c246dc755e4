"""A self-contained HTML report of the metrics history: one inline SVG line chart per metric, the trend
line on the overall score, and a table of the latest records. No scripts, fonts or images are fetched,
so the file opens offline and can be attached anywhere."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evorag.tools.evaluation import Trend

from evorag.errors import UserError

CHARTS = (
    ("grounding", "Grounding"),
    ("rougeL", "ROUGE-L F"),
    ("ndcg", "nDCG"),
    ("code_quality", "Code quality"),
    ("overall", "Overall"),
)
TABLE_ROWS = 20
_WIDTH, _HEIGHT = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 28

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 20px 0 4px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 8px 24px; }
svg { width: 100%; max-width: 640px; height: auto; background: #fafbfc; border: 1px solid #d0d7de; }
.axis { stroke: #8c959f; stroke-width: 1; } .grid { stroke: #eaeef2; stroke-width: 1; }
.line { fill: none; stroke: #0969da; stroke-width: 2; } .dot { fill: #0969da; }
.trend { stroke: #cf222e; stroke-width: 2; stroke-dasharray: 6 4; }
.label { font-size: 11px; fill: #57606a; }
table { border-collapse: collapse; margin-top: 8px; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #57606a; font-style: italic; }
"""


def _x(index: int, count: int) -> float:
    span = _WIDTH - _LEFT - _RIGHT
    return _LEFT + (span * index / (count - 1) if count > 1 else span / 2)


def _y(value: float) -> float:
    return _TOP + (_HEIGHT - _TOP - _BOTTOM) * (1.0 - min(1.0, max(0.0, value)))


def _value(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _trend_segment(
    values: list[float | None], trend: Trend | None
) -> tuple[float, float, float, float] | None:
    """End points (x1, y1, x2, y2) of the least-squares line over the trend's window of overall scores."""
    if trend is None or trend.slope is None or trend.window < 2:
        return None
    present = [(i, v) for i, v in enumerate(values) if v is not None][-trend.window :]
    if len(present) < 2:
        return None
    # The trend is per stored iteration; fit its intercept on the same points.
    n = len(present)
    mean_y = sum(v for _, v in present) / n
    mean_k = (n - 1) / 2
    first, last = present[0][0], present[-1][0]
    start = mean_y - trend.slope * mean_k
    end = mean_y + trend.slope * (n - 1 - mean_k)
    return _x(first, len(values)), _y(start), _x(last, len(values)), _y(end)


def _chart(title: str, values: list[float | None], trend: Trend | None) -> str:
    parts = [
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{html.escape(title)} over time">',
        f"<title>{html.escape(title)} over time</title>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="label" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
        )
    bottom = _HEIGHT - _BOTTOM
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{_WIDTH - _RIGHT}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}"/>')
    count = len(values)
    if count:
        parts.append(f'<text class="label" x="{_LEFT}" y="{_HEIGHT - 8}">#1</text>')
        parts.append(
            f'<text class="label" x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 8}" text-anchor="end">#{count}</text>'
        )
    # A missing value (metric did not apply) breaks the line instead of being drawn as 0.
    run: list[str] = []
    for index, value in enumerate([*values, None]):
        if value is None:
            if len(run) > 1:
                parts.append(f'<polyline class="line" points="{" ".join(run)}"/>')
            run = []
            continue
        x, y = _x(index, count), _y(value)
        run.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>#{index + 1}: {value:.3f}</title></circle>'
        )
    segment = _trend_segment(values, trend)
    if segment is not None:
        x1, y1, x2, y2 = segment
        parts.append(f'<line class="trend" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>')
    if not any(v is not None for v in values):
        parts.append(
            f'<text class="label" x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle">no data</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(history: Sequence[dict[str, Any]]) -> str:
    columns = ["id", "created", "kind", "query", "model", *(key for key, _ in CHARTS), "tokens"]
    rows = [
        "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead><tbody>"
    ]
    for record in reversed(list(history)[-TABLE_ROWS:]):
        created = record.get("created_at")
        created_text = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(created)))
            if isinstance(created, (int, float))
            else created
        )
        query = str(record.get("query") or "")
        tokens = [record.get("prompt_tokens"), record.get("completion_tokens")]
        cells = [
            _cell(record.get("id")),
            _cell(created_text),
            _cell(record.get("kind")),
            _cell(query if len(query) <= 90 else query[:87] + "..."),
            _cell(record.get("model")),
            *(_cell(_value(record, key)) for key, _ in CHARTS),
            _cell(
                " / ".join("-" if t is None else str(t) for t in tokens)
                if any(t is not None for t in tokens)
                else None
            ),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _trend_text(trend: Trend | None) -> str:
    if trend is None:
        return "Trend: not computed."
    if trend.slope is None:
        return f"Trend of the overall score: {trend.direction} ({trend.window} scores)."
    relative = "n/a" if trend.relative_change is None else f"{trend.relative_change:+.1%}"
    return (
        f"Trend of the overall score over the last {trend.window} scores: <b>{html.escape(trend.direction)}</b>, "
        f"slope {trend.slope:+.4f} per iteration, newer half vs older half {relative}."
    )


def write_html_report(history: Sequence[dict[str, Any]], path: Path, trend: Trend | None = None) -> Path:
    """Write the report for ``history`` (records oldest first, as MetricsStore.history returns them)
    to ``path`` and return it. Raises UserError when the file cannot be written."""
    path = Path(path)
    history = list(history)
    charts = []
    for key, title in CHARTS:
        values = [_value(record, key) for record in history]
        caption = ""
        if key == "overall" and trend is not None and trend.slope is not None:
            caption = (
                f'<div class="label">Dashed: least-squares trend over the last {trend.window} scores.</div>'
            )
        chart = _chart(title, values, trend if key == "overall" else None)
        charts.append(f"<section><h2>{html.escape(title)}</h2>{chart}{caption}</section>")
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>evorag metrics</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>evorag metrics</h1><p>{len(history)} records. {_trend_text(trend)}</p>"
        + ("" if history else '<p class="empty">No records yet.</p>')
        + f'<div class="charts">{"".join(charts)}</div>'
        + f"<h2>Latest records</h2>{_table(history)}</body></html>"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UserError(
            f"cannot write the HTML report to {path}: {exc.strerror}", hint="choose a writable path"
        ) from exc
    return path
