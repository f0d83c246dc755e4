"""The correctness report of one answer: grounding, ROUGE, nDCG, code quality and their weighted sum."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
from evorag.tools.evaluation._code_quality import CodeBlockReport, CodeQualityConfig, code_quality
from evorag.tools.evaluation._grounding import (
    Claim,
    ClaimVerdict,
    ContextEvidence,
    GroundingConfig,
    GroundingResult,
    judge_claims,
    semantic_candidates,
)
from evorag.tools.evaluation._relevance import graded_ndcg, labelled_ndcg
from evorag.tools.evaluation._rouge import RougeResult, rouge, warm_up
from evorag.tools.evaluation._text import (
    CodeBlock,
    TextUnit,
    citation_numbers,
    clean_markdown,
    split_code_blocks,
    split_sentences,
    strip_citations,
)

from evorag.errors import EvoragError, ModelError, UserError

EmbedFn = Callable[[list[str]], np.ndarray]
ContextLike = Mapping[str, Any] | Any  # a dict (Hit.to_dict() shape or {"text": ...}), a Chunk or a Hit

METRICS = ("grounding", "rouge", "ndcg", "code_quality")


@dataclass(slots=True, frozen=True)
class Weights:
    """Weights of the overall score; validated and normalized to sum to 1 on creation.

    Raises UserError for an unknown name, a negative or non-finite weight, or weights summing to 0.
    """

    grounding: float = 0.35
    rouge: float = 0.25
    ndcg: float = 0.25
    code_quality: float = 0.15

    def __post_init__(self) -> None:
        values = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise UserError(
                    f"weight {item.name} must be a non-negative number, got {value!r}",
                    hint="e.g. grounding=0.35, rouge=0.25, ndcg=0.25, code_quality=0.15",
                )
            values[item.name] = float(value)
        total = sum(values.values())
        if total <= 0:
            raise UserError("the metric weights sum to 0", hint="give at least one metric a positive weight")
        for name, value in values.items():
            object.__setattr__(self, name, value / total)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float]) -> Weights:
        """Build from a partial mapping (missing names keep their defaults). "code" is accepted for
        "code_quality"."""
        known = {item.name for item in fields(cls)}
        data = {("code_quality" if key == "code" else key): value for key, value in mapping.items()}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown metric weight {unknown[0]!r}", hint=f"use {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, float]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(slots=True)
class EvaluatorConfig:
    weights: Weights = field(default_factory=Weights)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    code: CodeQualityConfig = field(default_factory=CodeQualityConfig)
    ndcg_k: int = 10
    # Graded relevance without labels (see tools/evaluation/_relevance.py).
    similarity_threshold: float = 0.35
    lexical_threshold: float = 0.5
    # Which ROUGE-L figure enters the overall score when it is computed against the contexts (no
    # reference): the F-measure is small by construction there because the contexts are long.
    rouge_context_measure: Literal["fmeasure", "precision"] = "fmeasure"
    # Bounds on the work per context, so one huge chunk cannot blow the latency budget.
    max_units_per_context: int = 60
    max_embed_chars: int = 500
    query_units_per_context: int = 3  # sentences per context embedded to judge its similarity to the query


@dataclass(slots=True)
class CorrectnessReport:
    """Everything measured about one answer. Metrics are in [0, 1]; None means "did not apply"
    (no claim to ground, nothing to compare ROUGE or nDCG with) and is left out of ``overall``,
    whose weights are then renormalized over the metrics that did apply."""

    query: str
    grounding: float | None
    rouge1: float | None
    rouge2: float | None
    rougeL: float | None
    rouge_target: Literal["reference", "context"] | None
    ndcg: float | None
    ndcg_source: Literal["labels", "graded"] | None
    code_quality: float
    overall: float
    weights: dict[str, float]
    claims: list[ClaimVerdict] = field(default_factory=list)
    supported: int = 0
    unsupported: int = 0
    contradicted: int = 0
    citation_accuracy: float | None = None
    context_grades: list[float] = field(default_factory=list)
    code_blocks: list[CodeBlockReport] = field(default_factory=list)
    rouge_detail: RougeResult | None = None
    embedder_used: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float | None]:
        """The headline figures, flat (what the metrics store keeps in columns)."""
        return {
            "grounding": self.grounding,
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeL": self.rougeL,
            "ndcg": self.ndcg,
            "code_quality": self.code_quality,
            "overall": self.overall,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["claims"] = [v.to_dict() for v in self.claims]
        data["code_blocks"] = [b.to_dict() for b in self.code_blocks]
        data["rouge_detail"] = self.rouge_detail.to_dict() if self.rouge_detail else None
        return data


@dataclass(slots=True)
class _Context:
    text: str
    url: str | None
    ids: list[str]  # the chunk id, or the ids of the chunks a merged passage was built from


def _as_context(item: ContextLike, position: int) -> _Context:
    """Accept a Hit, a Chunk, or a dict with "text" or "content" (Hit.to_dict() uses "content") and
    optionally "url", "id" and "chunk_ids" (an assembled passage)."""
    chunk = getattr(item, "chunk", None)
    if chunk is not None:  # Hit
        item = chunk
    if isinstance(item, Mapping):
        text = item.get("text", item.get("content"))
        url, chunk_id, chunk_ids = item.get("url"), item.get("id"), item.get("chunk_ids")
    else:
        text = getattr(item, "text", None)
        url, chunk_id, chunk_ids = getattr(item, "url", None), getattr(item, "id", None), None
    if not isinstance(text, str):
        raise UserError(
            f"context {position + 1} has no text",
            hint="pass dicts with a 'text' or 'content' key, Chunks or Hits",
        )
    ids = [str(chunk_id)] if chunk_id is not None else []
    ids += [str(i) for i in chunk_ids or () if str(i) not in ids]
    return _Context(text=text, url=str(url) if url is not None else None, ids=ids)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()
        self._last = self._start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round((now - self._last) * 1000, 3)
        self._last = now

    def total(self) -> dict[str, float]:
        self.timings["total"] = round((time.perf_counter() - self._start) * 1000, 3)
        return self.timings


class Evaluator:
    """Scores answers. Holds the configuration and the (optional) embedder.

    ``embed`` takes a list of texts and returns an (n, d) array of unit vectors (rows are re-normalized
    anyway). It is called once per answer with the query, the claims and the context sentences. Without it
    grounding and relevance are lexical only. An embedder that raises or returns the wrong shape makes
    :meth:`evaluate` raise ModelError.
    """

    def __init__(self, config: EvaluatorConfig | None = None, *, embed: EmbedFn | None = None) -> None:
        self.config = config or EvaluatorConfig()
        self.embed = embed
        if self.config.ndcg_k < 1:
            raise UserError(f"ndcg_k must be >= 1, got {self.config.ndcg_k}")

    def warm_up(self) -> None:
        """Load rouge-score (about 1 s of NLTK import) ahead of the first answer."""
        warm_up()

    def evaluate(
        self,
        query: str,
        answer: str,
        contexts: Sequence[ContextLike],
        *,
        reference: str | None = None,
        relevance: Mapping[str, float] | None = None,
    ) -> CorrectnessReport:
        """Build the correctness report of ``answer`` to ``query`` given the retrieved ``contexts``
        (in retrieval order; [n] in the answer refers to ``contexts[n-1]``).

        ``reference``: a reference answer for ROUGE (else the contexts are the target).
        ``relevance``: labelled grades by chunk id or URL for nDCG (else graded from the answer).
        Raises UserError for a context without text, ModelError when the embedder fails.
        """
        config = self.config
        watch = _Stopwatch()
        items = [_as_context(item, i) for i, item in enumerate(contexts)]
        claims, blocks, evidence = self._claims_and_evidence(answer, items)
        watch.lap("parse")

        # One batched embedding call: the query, the claims, and only the context sentences whose
        # embedding can matter (see semantic_candidates) -- embedding is most of an evaluation's cost.
        query_vector = claim_vectors = None
        unit_vectors: list[np.ndarray] | None = None
        embedded: list[list[int]] = [[] for _ in evidence]
        if self.embed is not None and (claims or any(e.units for e in evidence)):
            wanted = semantic_candidates(claims, evidence, config.grounding)
            query_stems = TextUnit.of(query).stems
            for index, context in enumerate(evidence):
                overlaps = sorted(
                    ((len(query_stems & u.stems), -i) for i, u in enumerate(context.units)), reverse=True
                )
                wanted[index].update(-i for shared, i in overlaps[: config.query_units_per_context] if shared)
            embedded = [sorted(indices) for indices in wanted]
            texts = [query] + [c.text for c in claims]
            texts += [evidence[c].units[i].text for c in range(len(evidence)) for i in embedded[c]]
            matrix = self._embed_unique([t[: config.max_embed_chars] for t in texts])
            query_vector, claim_vectors = matrix[0], matrix[1 : 1 + len(claims)]
            unit_vectors, offset = [], 1 + len(claims)
            for context, indices in zip(evidence, embedded, strict=True):
                # Rows of units left out stay zero: cosine 0, so they score on words alone.
                vectors = np.zeros((len(context.units), matrix.shape[1]), dtype=matrix.dtype)
                vectors[indices] = matrix[offset : offset + len(indices)]
                unit_vectors.append(vectors)
                offset += len(indices)
        watch.lap("embedding")

        grounding = judge_claims(
            claims, evidence, config.grounding, claim_vectors=claim_vectors, unit_vectors=unit_vectors
        )
        watch.lap("grounding")

        answer_text = strip_citations(answer)
        rouge_result: RougeResult | None = None
        if reference is not None and reference.strip():
            rouge_result = rouge(answer_text, strip_citations(reference), "reference")
        elif items and answer_text.strip():
            rouge_result = rouge(answer_text, "\n".join(item.text for item in items), "context")
        watch.lap("rouge")

        ndcg, ndcg_source, grades = self._ndcg(
            query, answer, items, evidence, grounding, query_vector, unit_vectors, embedded, relevance
        )
        watch.lap("ndcg")

        code = code_quality(blocks, config.code)
        watch.lap("code_quality")

        rouge_component: float | None = None
        if rouge_result is not None:
            use_precision = rouge_result.target == "context" and config.rouge_context_measure == "precision"
            rouge_component = rouge_result.rougeL.precision if use_precision else rouge_result.rougeL.fmeasure
        overall = _weighted(
            config.weights,
            {
                "grounding": grounding.score,
                "rouge": rouge_component,
                "ndcg": ndcg,
                "code_quality": code.score,
            },
        )
        return CorrectnessReport(
            query=query,
            grounding=_round(grounding.score),
            rouge1=_round(rouge_result.rouge1.fmeasure) if rouge_result else None,
            rouge2=_round(rouge_result.rouge2.fmeasure) if rouge_result else None,
            rougeL=_round(rouge_result.rougeL.fmeasure) if rouge_result else None,
            rouge_target=rouge_result.target if rouge_result else None,
            ndcg=_round(ndcg),
            ndcg_source=ndcg_source,
            code_quality=code.score,
            overall=round(overall, 4),
            weights=config.weights.to_dict(),
            claims=grounding.verdicts,
            supported=grounding.supported,
            unsupported=grounding.unsupported,
            contradicted=grounding.contradicted,
            citation_accuracy=_round(grounding.citation_accuracy),
            context_grades=grades,
            code_blocks=code.blocks,
            rouge_detail=rouge_result,
            embedder_used=query_vector is not None,
            timings_ms=watch.total(),
        )

    def grounding(self, answer: str, contexts: Sequence[ContextLike]) -> GroundingResult:
        """The grounding of ``answer`` alone: what the grounding gate reads, without the rest of the report
        (the same figure ``evaluate`` reports). Raises what ``evaluate`` raises."""
        config = self.config
        items = [_as_context(item, i) for i, item in enumerate(contexts)]
        claims, _, evidence = self._claims_and_evidence(answer, items)
        claim_vectors = None
        unit_vectors: list[np.ndarray] | None = None
        if self.embed is not None and claims:
            embedded = [sorted(indices) for indices in semantic_candidates(claims, evidence, config.grounding)]
            texts = [c.text for c in claims]
            texts += [evidence[c].units[i].text for c in range(len(evidence)) for i in embedded[c]]
            matrix = self._embed_unique([t[: config.max_embed_chars] for t in texts])
            claim_vectors, unit_vectors, offset = matrix[: len(claims)], [], len(claims)
            for context, indices in zip(evidence, embedded, strict=True):
                vectors = np.zeros((len(context.units), matrix.shape[1]), dtype=matrix.dtype)
                vectors[indices] = matrix[offset : offset + len(indices)]
                unit_vectors.append(vectors)
                offset += len(indices)
        return judge_claims(
            claims, evidence, config.grounding, claim_vectors=claim_vectors, unit_vectors=unit_vectors
        )

    def _claims_and_evidence(
        self, answer: str, items: Sequence[_Context]
    ) -> tuple[list[Claim], list[CodeBlock], list[ContextEvidence]]:
        """The answer's claims and code blocks, and the evidence units of every context."""
        config = self.config
        prose, blocks = split_code_blocks(answer)
        claims: list[Claim] = []
        for sentence in split_sentences(prose):
            text = clean_markdown(sentence)
            unit = TextUnit.of(text)
            if len(unit.stems) >= config.grounding.min_claim_words:
                claims.append(Claim(text=text, citations=citation_numbers(sentence), unit=unit))
        evidence: list[ContextEvidence] = []
        for item in items:
            context_prose, context_blocks = split_code_blocks(item.text)
            units = [
                TextUnit.of(clean_markdown(s)) for s in split_sentences(context_prose, keep_headings=True)
            ]
            units += [TextUnit.of(block.code) for block in context_blocks]
            evidence.append(ContextEvidence.of([u for u in units if u.stems][: config.max_units_per_context]))
        return claims, blocks, evidence

    def _embed_unique(self, texts: list[str]) -> np.ndarray:
        """Embed each distinct text once (overlapping chunks repeat sentences)."""
        position: dict[str, int] = {}
        for text in texts:
            position.setdefault(text, len(position))
        unique = self._embed(list(position))
        return unique[[position[text] for text in texts]]

    def _embed(self, texts: list[str]) -> np.ndarray:
        try:
            matrix = np.asarray(self.embed(texts), dtype=np.float32)  # type: ignore[misc]
        except EvoragError:
            raise
        except Exception as exc:  # the embedder is someone else's code: report, do not crash the answer path
            raise ModelError(
                f"the embedder failed during evaluation: {exc}", hint="check the embedding model"
            ) from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ModelError(
                f"the embedder returned an array of shape {matrix.shape} for {len(texts)} texts",
                hint="embed(texts) must return one row per text",
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms > 0, norms, 1.0)

    def _ndcg(
        self,
        query: str,
        answer: str,
        items: list[_Context],
        evidence: list[ContextEvidence],
        grounding: GroundingResult,
        query_vector: np.ndarray | None,
        unit_vectors: list[np.ndarray] | None,
        embedded: list[list[int]],
        relevance: Mapping[str, float] | None,
    ) -> tuple[float | None, Literal["labels", "graded"] | None, list[float]]:
        if not items:
            return None, None, []
        if relevance:
            score = labelled_ndcg(
                [i.ids for i in items], [i.url for i in items], relevance, self.config.ndcg_k
            )
            return score, "labels", []
        cited = {n - 1 for n in citation_numbers(answer)}
        used = cited | {
            v.evidence for v in grounding.verdicts if v.status == "supported" and v.evidence is not None
        }
        query_stems = TextUnit.of(query).stems
        grades: list[float] = []
        for index, context in enumerate(evidence):
            if query_vector is not None and unit_vectors is not None and embedded[index]:
                vectors = unit_vectors[index][embedded[index]]
                similar = float(np.max(vectors @ query_vector)) >= self.config.similarity_threshold
            else:
                coverage = len(query_stems & context.stems) / len(query_stems) if query_stems else 0.0
                similar = coverage >= self.config.lexical_threshold
            grades.append(float(similar) + float(index in used))
        return graded_ndcg(grades), "graded", grades


def _weighted(weights: Weights, values: Mapping[str, float | None]) -> float:
    applicable = {name: value for name, value in values.items() if value is not None}
    total = sum(getattr(weights, name) for name in applicable)
    if total <= 0:
        return 0.0
    return sum(getattr(weights, name) * value for name, value in applicable.items()) / total


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def evaluate_answer(
    query: str,
    answer: str,
    contexts: Sequence[ContextLike],
    *,
    reference: str | None = None,
    relevance: Mapping[str, float] | None = None,
    embed: EmbedFn | None = None,
    weights: Weights | Mapping[str, float] | None = None,
) -> CorrectnessReport:
    """One-shot :meth:`Evaluator.evaluate` with default configuration (weights may be overridden)."""
    config = EvaluatorConfig()
    if weights is not None:
        config.weights = weights if isinstance(weights, Weights) else Weights.from_mapping(weights)
    return Evaluator(config, embed=embed).evaluate(
        query, answer, contexts, reference=reference, relevance=relevance
    )
