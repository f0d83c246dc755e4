"""Quality use cases: the metrics report (history and trend), evaluations on data sets with the regression
gate and baselines, and the retrieval gate the evolution pipeline runs before deploys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorag.errors import NotFoundError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._knowledge import KnowledgeService
from evorag.tools import regression_gate
from evorag.tools.datasets import load_beir, load_golden
from evorag.tools.evaluation import Trend
from evorag.tools.evolution import GateVerdict
from evorag.tools.metrics_html import write_html_report
from evorag.tools.regression_gate import GateResult
from evorag.tools.retrieval_eval import RetrievalEvalResult, evaluate_beir, evaluate_golden
from evorag.tools.search import SearchOptions

GOLDEN_DEMO = Path(__file__).resolve().parents[1] / "golden" / "demo.jsonl"


@dataclass(slots=True)
class MetricsReport:
    """The newest answer reports (newest first) and the improvement trend over the trend window."""

    history: list[dict[str, Any]]
    trend: Trend
    html_path: Path | None = None

    def to_dict(self) -> dict:
        return {"history": self.history, "trend": self.trend.to_dict(),
                "html_path": str(self.html_path) if self.html_path else None}


@dataclass(slots=True)
class Evaluation:
    """One evaluation run, and the regression gate's verdict when a baseline was given."""

    result: RetrievalEvalResult
    gate: GateResult | None = None
    baseline_saved: Path | None = None

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "gate": self.gate.to_dict() if self.gate else None}


class QualityService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge

    def metrics_report(self, *, last: int = 20, html: Path | None = None,
                       principal: Principal | None = None) -> MetricsReport:
        """Answer-quality history and trend (reader role); ``html`` also writes a self-contained report there."""
        self._ctx.check(principal, "metrics")
        metrics = self._ctx.parts.metrics
        report = MetricsReport(metrics.history(last=last, kind="answer"),
                               metrics.trend(window=self._ctx.settings.trend_window))
        if html is not None:
            report.html_path = write_html_report(report.history, Path(html), report.trend)
        return report

    def evaluate(self, dataset: Path, *, source: str | None = None, max_queries: int | None = None,
                 answers: bool = True, baseline: Path | None = None, save_baseline: Path | None = None,
                 tolerance: float = regression_gate.DEFAULT_TOLERANCE,
                 on_index_progress: Callable[[int, int], None] | None = None,
                 principal: Principal | None = None) -> Evaluation:
        """Measure retrieval (nDCG@10, Recall@k, MRR, Hit@k) and, for golden sets with ``answers``, answer
        quality; record it in the metrics history; compare with ``baseline`` and save ``save_baseline``.

        ``dataset`` is a BEIR folder (indexed as a source of its own, holding the writer slot, with
        ``on_index_progress(documents_done, documents_total)``) or a golden-set JSON-lines file over crawled
        sources. Needs the operator role.
        """
        with self._ctx.acting(principal, "eval"):
            path = Path(dataset)
            if not path.exists():
                raise NotFoundError(f"no data set at {path}", hint="pass a BEIR folder or a .jsonl golden set")
            baseline_metrics = regression_gate.load_baseline(Path(baseline)) if baseline else None
            result = (self._evaluate_beir(path, max_queries, on_index_progress) if path.is_dir()
                      else self._evaluate_golden(path, source=source, answers=answers))
            self._ctx.parts.metrics.record(result.metrics, query=f"eval {result.dataset}", source_filter=source,
                                           model=result.config.get("embedder"), kind="eval")
            run = Evaluation(result)
            if baseline_metrics is not None:
                run.gate = regression_gate.compare(result.metrics, baseline_metrics, tolerance=tolerance)
            if save_baseline:
                run.baseline_saved = regression_gate.save_baseline(
                    Path(save_baseline), result.metrics, meta={"dataset": result.dataset, **result.config})
            return run

    def _evaluate_beir(self, path: Path, max_queries: int | None,
                       on_progress: Callable[[int, int], None] | None) -> RetrievalEvalResult:
        dataset = load_beir(path)
        total, done = len(dataset.corpus), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if on_progress is not None:
                on_progress(done, total)

        options = SearchOptions.from_settings(self._ctx.settings, limit=100)
        with self._ctx.writer:  # indexing the corpus writes the index
            return evaluate_beir(dataset, self._ctx.parts.indexer(), options, max_queries=max_queries,
                                 advance_index=advance)

    def _evaluate_golden(self, path: Path, *, source: str | None, answers: bool) -> RetrievalEvalResult:
        items = load_golden(path)
        if source:
            self._knowledge.require_source(source)
        ask = (lambda query, reference: self._knowledge.ask(query, source=source, reference=reference)) \
            if answers else None
        options = SearchOptions.from_settings(self._ctx.settings, limit=20, source=source)
        return evaluate_golden(items, self._ctx.parts.searcher(), options, name=path.name, ask=ask)

    def retrieval_gate(self) -> GateVerdict:
        """The regression gate of evolutions: retrieval on the gate's golden set against its baseline
        (EVORAG_GATE_GOLDEN_SET, default the demo set; EVORAG_GATE_BASELINE; EVORAG_GATE_SOURCE)."""
        settings = self._ctx.settings
        golden = settings.gate_golden_set or GOLDEN_DEMO
        result = self._evaluate_golden(Path(golden), source=settings.gate_source, answers=False)
        gate = regression_gate.compare(result.metrics, regression_gate.load_baseline(settings.gate_baseline))
        reason = None if gate.passed else "; ".join(
            f"{r.metric} {r.baseline:.3f} -> {r.current:.3f}" for r in gate.regressions)
        return GateVerdict("retrieval", gate.passed, reason, details=gate.to_dict())
