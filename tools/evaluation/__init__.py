"""Measuring answers and retrieval.

* Retrieval metrics with trec_eval / BEIR definitions: :func:`ndcg_at_k`, :func:`recall_at_k`,
  :func:`precision_at_k`, :func:`mrr`, :func:`hit_at_k`, :func:`evaluate_run`.
* The correctness report of one answer: :class:`Evaluator` / :func:`evaluate_answer` ->
  :class:`CorrectnessReport` (grounding with per-claim verdicts, ROUGE, nDCG, code quality, overall).
* The improvement trend over past scores: :func:`compute_trend` -> :class:`Trend`.
"""

from evorag.tools.evaluation._code_quality import (
    CodeBlockReport,
    CodeQualityConfig,
    CodeQualityResult,
    code_quality,
)
from evorag.tools.evaluation._grounding import ClaimVerdict, GroundingConfig, GroundingResult
from evorag.tools.evaluation._report import (
    CorrectnessReport,
    EmbedFn,
    Evaluator,
    EvaluatorConfig,
    Weights,
    evaluate_answer,
)
from evorag.tools.evaluation._retrieval import (
    DEFAULT_KS,
    evaluate_run,
    hit_at_k,
    mrr,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
    recall_at_k,
)
from evorag.tools.evaluation._rouge import RougeResult, RougeScore, rouge
from evorag.tools.evaluation._text import split_sentences
from evorag.tools.evaluation._trend import Trend, compute_trend

__all__ = [
    "DEFAULT_KS",
    "ClaimVerdict",
    "CodeBlockReport",
    "CodeQualityConfig",
    "CodeQualityResult",
    "CorrectnessReport",
    "EmbedFn",
    "Evaluator",
    "EvaluatorConfig",
    "GroundingConfig",
    "GroundingResult",
    "RougeResult",
    "RougeScore",
    "Trend",
    "Weights",
    "code_quality",
    "compute_trend",
    "evaluate_answer",
    "evaluate_run",
    "hit_at_k",
    "mrr",
    "ndcg_at_k",
    "precision_at_k",
    "query_metrics",
    "recall_at_k",
    "rouge",
    "split_sentences",
]
