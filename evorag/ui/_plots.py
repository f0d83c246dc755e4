"""The metrics dashboard's plot: each answer-quality metric over time and the trend of the overall score."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from evorag.ui._render import QUALITY_COLUMNS

_COLORS = {"grounding": "#2f81f7", "rougeL": "#a371f7", "ndcg": "#3fb950", "code_quality": "#d29922",
           "overall": "#f0f6fc"}


def trend_line(values: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares (intercept, slope) of ``values`` against their index, or None for fewer than 2."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    denominator = sum((x - mean_x) ** 2 for x in range(n))
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / denominator
    return mean_y - slope * mean_x, slope


def metrics_figure(history: Sequence[dict], window: int = 10):
    """A Plotly figure of ``history`` (oldest first, as MetricsStore.history returns it).

    One line per metric against the answer's rank (1 = oldest shown; the time is in the hover: answers
    come in bursts, so a time axis would squeeze most of them together), a metric that did not apply to
    an answer leaving a gap, and a dashed least-squares trend over the newest ``window`` overall scores.
    Returns None for an empty history.
    """
    import plotly.graph_objects as go

    if not history:
        return None
    ranks = list(range(1, len(history) + 1))
    hover = [f"{dt.datetime.fromtimestamp(row['created_at'], dt.UTC):%Y-%m-%d %H:%M} UTC<br>"
             f"{html.escape(str(row.get('query') or '')[:80])}" for row in history]
    figure = go.Figure()
    for key, label in QUALITY_COLUMNS:
        values = [row.get(key) for row in history]
        if all(v is None for v in values):
            continue
        figure.add_trace(go.Scatter(
            x=ranks, y=values, name=label, mode="lines+markers", connectgaps=False,
            line={"color": _COLORS[key], "width": 3 if key == "overall" else 1.5},
            customdata=hover, hovertemplate="%{customdata}<br>" + label + " %{y:.2f}<extra></extra>",
        ))
    recent = [(rank, row["overall"]) for rank, row in zip(ranks, history) if row.get("overall") is not None][-window:]
    fit = trend_line([value for _, value in recent])
    if fit is not None:
        intercept, slope = fit
        figure.add_trace(go.Scatter(
            x=[recent[0][0], recent[-1][0]], y=[intercept, intercept + slope * (len(recent) - 1)],
            name=f"trend (overall, last {len(recent)})", mode="lines",
            line={"color": "#f85149", "dash": "dash", "width": 2}, hoverinfo="skip",
        ))
    grid = "rgba(127,127,127,0.25)"
    figure.update_layout(
        title={"text": "Answer quality"}, height=420, margin={"l": 50, "r": 20, "t": 50},
        yaxis={"range": [0, 1.05], "title": "score", "gridcolor": grid, "zeroline": False},
        xaxis={"range": [0.5, len(history) + 0.5], "dtick": max(1, len(history) // 10), "title": "answer",
               "gridcolor": grid, "zeroline": False},
        legend={"orientation": "h", "y": -0.25}, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(127,127,127,0.06)", font={"color": "#8b949e"},
    )
    return figure


def _small_layout(figure, title: str, y_title: str) -> None:
    grid = "rgba(127,127,127,0.25)"
    figure.update_layout(
        title={"text": title}, height=300, margin={"l": 50, "r": 20, "t": 50, "b": 40}, showlegend=False,
        yaxis={"title": y_title, "gridcolor": grid, "zeroline": False, "rangemode": "tozero"},
        xaxis={"gridcolor": grid}, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(127,127,127,0.06)",
        font={"color": "#8b949e"},
    )


def cost_figure(cost_by_day: Sequence):
    """Bars of the model cost of each day (evorag.service's DayCost, oldest first), the calls in the hover;
    None when no day of them had a model call."""
    import plotly.graph_objects as go

    if not any(day.calls for day in cost_by_day):
        return None
    figure = go.Figure(go.Bar(
        x=[day.day for day in cost_by_day], y=[day.cost_usd for day in cost_by_day],
        customdata=[day.calls for day in cost_by_day], marker={"color": "#2f81f7"},
        hovertemplate="%{x}<br>$%{y:.4f} · %{customdata} model calls<extra></extra>",
    ))
    _small_layout(figure, "Model cost by day (UTC)", "USD")
    return figure


_OUTCOME_COLORS = {"deployed": "#3fb950", "rejected": "#f85149", "model_unavailable": "#d29922",
                   "pending": "#8b949e"}


def evolutions_figure(evolutions):
    """Bars of how the window's evolutions ended (evorag.service's EvolutionStats); None when none finished."""
    import plotly.graph_objects as go

    if not evolutions.finished:
        return None
    names = list(evolutions.by_status)
    figure = go.Figure(go.Bar(
        x=names, y=[evolutions.by_status[name] for name in names],
        marker={"color": [_OUTCOME_COLORS.get(name, "#a371f7") for name in names]},
        hovertemplate="%{x}: %{y}<extra></extra>",
    ))
    rate = "" if evolutions.success_rate is None else f" · success rate {evolutions.success_rate:.0%}"
    _small_layout(figure, f"Evolution outcomes{rate}", "evolutions")
    return figure


USAGE_TOPICS_PLOTTED = 15
_UNSCORED = "#8b949e"


def quality_color(quality: float | None) -> str:
    """A topic's bar colour: red under 0.4, amber under 0.7, green from 0.7; grey when nothing was scored."""
    if quality is None:
        return _UNSCORED
    return "#f85149" if quality < 0.4 else "#d29922" if quality < 0.7 else "#3fb950"


def usage_figure(analysis):
    """Horizontal bars of the busiest topics' query volume (evorag.tools.usage_analysis's UsageAnalysis), the
    busiest on top, each coloured by its answer quality (``quality_color``: a long red bar is where the docs fail
    the most people); None when the period had no queries."""
    import plotly.graph_objects as go

    topics = analysis.topics[:USAGE_TOPICS_PLOTTED]
    if not topics:
        return None
    labels = [t.label if len(t.label) <= 48 else t.label[:47] + "…" for t in topics]
    hover = [f"{html.escape(t.label[:120])}<br>quality {'–' if t.quality is None else f'{t.quality:.2f}'}"
             f" · from the docs {'–' if t.answered_share is None else f'{t.answered_share:.0%}'}"
             f" · trend {t.trend} (before: {t.previous_volume})" for t in topics]
    figure = go.Figure(go.Bar(
        x=[t.volume for t in topics], y=labels, orientation="h", customdata=hover,
        marker={"color": [quality_color(t.quality) for t in topics]},
        hovertemplate="%{customdata}<br>%{x} queries<extra></extra>",
    ))
    _small_layout(figure, "Queries per topic, coloured by answer quality", "")
    figure.update_layout(height=max(260, 60 + 28 * len(topics)), margin={"l": 260},
                         yaxis={"autorange": "reversed", "rangemode": "normal"},
                         xaxis={"title": "queries", "rangemode": "tozero"})
    return figure
