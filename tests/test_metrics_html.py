"""The HTML metrics report: self-contained, one chart per metric, a trend line and a table."""

from __future__ import annotations

import re
from pathlib import Path

from evorag.tools.evaluation import compute_trend
from evorag.tools.metrics_html import CHARTS, write_html_report
from evorag.tools.metrics_store import MetricsStore


def _history(tmp_path: Path) -> list[dict]:
    store = MetricsStore(tmp_path / "m.sqlite3")
    for i in range(12):
        store.record(
            {"grounding": 0.5 + i / 30, "rougeL": 0.2, "ndcg": 0.7, "code_quality": None if i % 4 == 0 else 1.0,
             "overall": 0.4 + i / 40},
            query=f"question <script>alert({i})</script>",
            model="m",
            tokens={"prompt": 100 + i, "completion": 20},
        )  # fmt: skip
    return store.history()


def test_report_has_one_chart_per_metric_a_trend_line_and_a_table(tmp_path: Path) -> None:
    history = _history(tmp_path)
    trend = compute_trend([r["overall"] for r in history], window=8)
    path = write_html_report(history, tmp_path / "out" / "metrics.html", trend)
    page = path.read_text(encoding="utf-8")
    assert page.count("<svg") == len(CHARTS) == 5
    for _, title in CHARTS:
        assert f"<h2>{title}</h2>" in page
    assert page.count('class="trend"') == 1  # only on the overall chart
    assert "improving" in page
    assert page.count("<tr>") == 1 + 12  # header + rows
    assert "<script>" not in page and "&lt;script&gt;" in page  # queries are escaped


def test_report_is_self_contained(tmp_path: Path) -> None:
    path = write_html_report(_history(tmp_path), tmp_path / "metrics.html", None)
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page


def test_missing_values_break_the_line_instead_of_dropping_to_zero(tmp_path: Path) -> None:
    history = [{"id": i, "overall": v, "code_quality": v} for i, v in enumerate([0.5, None, 0.7, 0.8])]
    page = write_html_report(history, tmp_path / "m.html").read_text(encoding="utf-8")
    code_chart = page.split("<h2>Code quality</h2>")[1].split("</svg>")[0]
    assert code_chart.count("<polyline") == 1  # 0.7 -> 0.8; the lone 0.5 is a dot
    assert code_chart.count("<circle") == 3


def test_empty_history_still_writes_a_page(tmp_path: Path) -> None:
    page = write_html_report([], tmp_path / "m.html").read_text(encoding="utf-8")
    assert "No records yet." in page and page.count("<svg") == 5
