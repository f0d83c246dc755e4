"""Quality commands: the metrics report and evaluations with the regression gate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.table import Table

from evorag.cli._app import JsonFlag, SourceOpt, app, err, out, print_json, service
from evorag.progress import counting_progress
from evorag.terminal import strip_control

EVAL_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "hit@1", "hit@10", "answer_overall",
                "answer_grounding", "answer_rougeL", "answer_fallback_rate")


def _score(value) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command()
def metrics(
    last: Annotated[int, typer.Option(min=1, help="Show the newest N reports.")] = 20,
    html: Annotated[str | None, typer.Option(help="Write a self-contained HTML report with plots here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """History of answer quality, with the improvement trend."""
    with service() as rag:
        report = rag.metrics_report(last=last, html=Path(html) if html else None)
    if report.html_path:
        err.print(f"wrote {report.html_path}", markup=False)
    if as_json:
        print_json(report.history)
        return
    if not report.history:
        out.print("No answers measured yet. Ask something with `evorag ask`.")
        return
    table = Table("id", "when", "query", "grounding", "rouge", "ndcg", "code", "overall", "model")
    for row in report.history:
        when = dt.datetime.fromtimestamp(row["created_at"], dt.UTC).strftime("%m-%d %H:%M")
        table.add_row(str(row["id"]), when, esc(strip_control(row["query"] or "")[:40]), _score(row.get("grounding")),
                      _score(row.get("rougeL")), _score(row.get("ndcg")), _score(row.get("code_quality")),
                      _score(row.get("overall")), esc(row.get("model") or ""))
    out.print(table)
    trend = report.trend
    out.print(f"trend over the last {trend.window}: {trend.direction}"
              + (f" (slope {trend.slope:+.4f} per answer)" if trend.slope is not None else ""))


@app.command("eval")
def eval_(
    dataset: Annotated[str, typer.Argument(help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
                                                "or a golden-set JSONL file of {query, relevant, answer}.")],
    source: SourceOpt = None,
    max_queries: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N queries.")] = None,
    answers: Annotated[bool, typer.Option("--answers/--no-answers",
                                          help="Also answer golden items that have a reference answer.")] = True,
    baseline: Annotated[str | None, typer.Option(help="Compare with this baseline; exit 1 on a regression.")] = None,
    save_baseline: Annotated[str | None, typer.Option(help="Save this run's metrics as a baseline.")] = None,
    tolerance: Annotated[float, typer.Option(min=0.0, max=0.99, help="Allowed relative drop.")] = 0.05,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval (nDCG@10, Recall@k, MRR, Hit@k) and answer quality; gate on a baseline."""
    with service() as rag, counting_progress(err, "indexing corpus", enabled=not as_json) as progress:
        run = rag.evaluate(Path(dataset), source=source, max_queries=max_queries, answers=answers,
                           baseline=Path(baseline) if baseline else None,
                           save_baseline=Path(save_baseline) if save_baseline else None, tolerance=tolerance,
                           on_index_progress=progress)
    if as_json:
        print_json(run.to_dict())
    else:
        result, gate = run.result, run.gate
        table = Table("metric", "value", title=f"{esc(result.dataset)} ({result.queries} queries)")
        for key in EVAL_METRICS:
            if key in result.metrics:
                table.add_row(key, f"{result.metrics[key]:.4f}")
        out.print(table)
        out.print(f"indexing {result.index_seconds:.1f}s, search {result.search_seconds:.1f}s")
        if gate:
            verdict = "[green]passed[/]" if gate.passed else "[red]FAILED[/]"
            out.print(f"regression gate {verdict} ({len(gate.compared)} metrics, tolerance {tolerance:.0%})")
            for reg in gate.regressions:
                out.print(f"  {reg.metric}: {reg.baseline:.4f} -> {reg.current:.4f} ({reg.relative_change:+.1%})")
    if not run.passed:
        raise typer.Exit(1)
