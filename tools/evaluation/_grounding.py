"""Grounding: is each claim of an answer backed by the retrieved contexts?

A *claim* is one sentence of the answer's prose (code blocks excluded, citation markers removed) with at
least ``min_claim_words`` content words. Each claim is compared with *evidence units*: the sentences and
code blocks of every context, and each pair of adjacent sentences (a claim often merges two).

Support test for a claim c against a unit u:

* lexical coverage = share of c's content-word stems (stemmed, stopwords dropped) found in u, where a
  word that appears in no context at all counts ``novel_word_weight`` times: a claim made of the
  contexts' vocabulary plus one new idea ("... automatically *retries* ...") must not pass on vocabulary;
* semantic similarity = cosine of their embeddings (only when an embedder is given), rescaled so that
  ``semantic_floor`` maps to 0 and ``semantic_ceiling`` to 1 (MiniLM gives 0.6-0.85 to on-topic
  inventions, so similarity is a bonus on top of the words, not a test of its own);
* match score = coverage without an embedder, else ``max(coverage, lexical_weight * coverage +
  (1 - lexical_weight) * semantic)``;
* u *matches* c when the score reaches ``support_threshold``.

A matching unit **supports** the claim unless it is inconsistent with it:

* a number of the claim that the whole context lacks is a **contradiction** when the unit's neighbourhood
  (two sentences either side) states another number ("5 seconds" vs "30 seconds"), else the claim is
  merely not supported by that unit (reason "number ... not found");
* negation: a clause of the claim and the unit's clause that contains most of its words (at least 60%)
  differ in polarity ("may be supplied" vs "may not be supplied") -> contradiction;
* opposite words: the claim uses a word where the unit uses its opposite, from a short list ("enabled"
  vs "disabled") or by a negating prefix ("safe" vs "unsafe") -> contradiction.

A claim citing ``[n]`` is checked against context n first; support anywhere else still counts (and is
reported as ``citation_ok=False``). Support wins over contradiction unless the contradicting unit
matches the claim clearly better (by more than ``conflict_margin``).

grounding = (supported - contradiction_penalty * contradicted) / claims, clipped to [0, 1]; None when the
answer has no claim (an empty or code-only answer), so the overall score is not skewed by a guess.

Measured on 32 hand-labelled claims about five Python-documentation passages (tests/test_evaluation.py):
29/32 verdicts right, with or without MiniLM; no invented claim accepted. Misses are deep paraphrases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from evorag.tools.evaluation._text import TextUnit, opposite_pair

ClaimStatus = Literal["supported", "unsupported", "contradicted"]


@dataclass(slots=True)
class GroundingConfig:
    support_threshold: float = 0.6
    lexical_weight: float = 0.5
    semantic_floor: float = 0.5
    semantic_ceiling: float = 0.95
    contradiction_penalty: float = 1.0
    min_claim_words: int = 2
    novel_word_weight: float = 2.0
    conflict_margin: float = 0.1
    semantic_candidates_per_claim: int = 4


@dataclass(slots=True)
class Claim:
    """One claim of the answer: ``text`` is clean prose, ``citations`` the 1-based [n] it carries."""

    text: str
    citations: list[int]
    unit: TextUnit


@dataclass(slots=True)
class ContextEvidence:
    """The evidence units of one retrieved context, in reading order, with their unions."""

    units: list[TextUnit]
    stems: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, units: list[TextUnit]) -> ContextEvidence:
        return cls(
            units=units,
            stems=frozenset().union(*(u.stems for u in units)),
            numbers=frozenset().union(*(u.numbers for u in units)),
        )


@dataclass(slots=True)
class ClaimVerdict:
    claim: str
    status: ClaimStatus
    evidence: int | None  # 0-based index of the context that decided, None when nothing matched
    evidence_text: str | None
    score: float  # match score of the deciding unit (best unit for unsupported claims)
    citations: list[int] = field(default_factory=list)
    citation_ok: bool | None = None  # None when the claim cites nothing
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class GroundingResult:
    score: float | None
    verdicts: list[ClaimVerdict]
    supported: int
    unsupported: int
    contradicted: int
    citation_accuracy: float | None  # share of citing claims supported by a context they cite

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdicts"] = [v.to_dict() for v in self.verdicts]
        return data


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def negation_conflict(claim: TextUnit, unit: TextUnit) -> bool:
    """A clause of the claim (two content words or more) whose closest clause in the unit -- the one
    containing most of its words, at least 60% -- has the other polarity."""
    for stems, negated in claim.clauses:
        if len(stems) < 2:
            continue
        best: tuple[float, float, bool] | None = None
        for other_stems, other_negated in unit.clauses:
            shared = len(stems & other_stems)
            if not shared:
                continue
            key = (shared / len(stems), _jaccard(stems, other_stems), other_negated)
            if best is None or key[:2] > best[:2]:
                best = key
        if best is not None and best[0] >= 0.6 and best[2] != negated:
            return True
    return False


def check_consistency(
    claim: TextUnit, unit: TextUnit, context_numbers: frozenset[str], nearby_numbers: frozenset[str]
) -> tuple[str, str]:
    """("ok" | "conflict" | "unverified", reason) for a unit that already matches the claim.

    A number of the claim that the whole context lacks is a conflict when the unit's neighbourhood (two
    sentences either side) states another number, else merely unverified.
    """
    missing = claim.numbers - context_numbers
    if missing:
        others = nearby_numbers - claim.numbers
        if others:
            return "conflict", f"number mismatch: {', '.join(sorted(missing))} vs {', '.join(sorted(others))}"
        return "unverified", f"number {', '.join(sorted(missing))} not found in the context"
    if negation_conflict(claim, unit):
        return "conflict", "negation mismatch"
    pair = opposite_pair(claim, unit)
    if pair is not None:
        return "conflict", f"opposite words: {pair[0]} vs {pair[1]}"
    return "ok", ""


@dataclass(slots=True)
class _Match:
    context: int
    unit: TextUnit
    score: float
    reason: str = ""


@dataclass(slots=True)
class _ContextMatches:
    support: _Match | None = None  # best consistent unit, even below the threshold (closest evidence)
    conflict: _Match | None = None  # best matching unit that contradicts the claim
    unverified: _Match | None = None  # best matching unit that lacks a number of the claim


def _better(current: _Match | None, candidate: _Match) -> _Match:
    return candidate if current is None or candidate.score > current.score else current


class _Scorer:
    """Scores claims against every unit of every context; holds the embedding matrices."""

    def __init__(
        self,
        contexts: Sequence[ContextEvidence],
        config: GroundingConfig,
        claim_vectors: np.ndarray | None,
        unit_vectors: Sequence[np.ndarray] | None,
    ) -> None:
        self.contexts = contexts
        self.config = config
        self.claim_vectors = claim_vectors
        self.unit_vectors = unit_vectors
        self.all_stems = frozenset().union(*(c.stems for c in contexts)) if contexts else frozenset()
        self.nearby_numbers = [
            [
                frozenset().union(*(u.numbers for u in c.units[max(0, i - 2) : i + 3]))
                for i in range(len(c.units))
            ]
            for c in contexts
        ]

    def _semantic(self, claim_index: int, context: int) -> np.ndarray | None:
        if self.claim_vectors is None or self.unit_vectors is None:
            return None
        cosine = self.unit_vectors[context] @ self.claim_vectors[claim_index]
        span = self.config.semantic_ceiling - self.config.semantic_floor
        return np.clip((cosine - self.config.semantic_floor) / span, 0.0, 1.0)

    def claim_weight(self, claim: TextUnit) -> float:
        """Words found in no context at all weigh more: a claim built from the contexts' vocabulary
        plus one new idea ("... automatically *retries* ...") should not pass on the vocabulary."""
        novel = len(claim.stems - self.all_stems)
        return len(claim.stems) + (self.config.novel_word_weight - 1.0) * novel

    def matches_in(self, claim_index: int, claim: TextUnit, context: int) -> _ContextMatches:
        found = _ContextMatches()
        evidence = self.contexts[context]
        units = evidence.units
        if not units or not claim.stems:
            return found
        semantic = self._semantic(claim_index, context)
        weight = self.config.lexical_weight
        threshold = self.config.support_threshold
        total = self.claim_weight(claim)
        for i, unit in enumerate(units):
            # A unit alone, then the unit with its next sentence: the pair may cover a merged claim.
            for pair in (False, True):
                if pair and i + 1 >= len(units):
                    break
                stems = unit.stems | units[i + 1].stems if pair else unit.stems
                coverage = len(claim.stems & stems) / total
                if semantic is None:
                    score = coverage
                else:
                    sem = float(max(semantic[i], semantic[i + 1])) if pair else float(semantic[i])
                    score = max(coverage, weight * coverage + (1.0 - weight) * sem)
                if score < threshold:
                    if found.support is None or score > found.support.score:
                        found.support = _Match(context, _merge(unit, units[i + 1]) if pair else unit, score)
                    continue
                evidence_unit = _merge(unit, units[i + 1]) if pair else unit
                nearby = self.nearby_numbers[context][i]
                status, reason = check_consistency(claim, evidence_unit, evidence.numbers, nearby)
                match = _Match(context, evidence_unit, score, reason)
                if status == "ok":
                    found.support = _better(found.support, match)
                elif status == "conflict":
                    found.conflict = _better(found.conflict, match)
                else:
                    found.unverified = _better(found.unverified, match)
        return found


def semantic_candidates(
    claims: Sequence[Claim], contexts: Sequence[ContextEvidence], config: GroundingConfig
) -> list[set[int]]:
    """Per context, the units whose embedding could change a verdict.

    Embedding is the dominant cost of an evaluation, so only these are embedded: for each claim, the
    ``semantic_candidates_per_claim`` units (alone or paired with their successor) with the highest
    coverage, among those that can reach the threshold at all -- with ``score = max(coverage, w *
    coverage + (1 - w) * semantic)`` and semantic <= 1, that needs coverage >= ``(threshold - (1 - w)) / w``.
    """
    weight = config.lexical_weight
    floor = max(0.0, (config.support_threshold - (1.0 - weight)) / weight) if weight > 0 else 0.0
    scorer = _Scorer(contexts, config, None, None)
    wanted: list[set[int]] = [set() for _ in contexts]
    for claim in claims:
        total = scorer.claim_weight(claim.unit)
        if not total:
            continue
        ranked: list[tuple[float, int, int, bool]] = []
        for c, context in enumerate(contexts):
            units = context.units
            for i, unit in enumerate(units):
                coverage = len(claim.unit.stems & unit.stems) / total
                if coverage >= floor:
                    ranked.append((coverage, c, i, False))
                if i + 1 < len(units):
                    coverage = len(claim.unit.stems & (unit.stems | units[i + 1].stems)) / total
                    if coverage >= floor:
                        ranked.append((coverage, c, i, True))
        ranked.sort(key=lambda item: -item[0])
        for _, c, i, pair in ranked[: config.semantic_candidates_per_claim]:
            wanted[c].add(i)
            if pair:
                wanted[c].add(i + 1)
    return wanted


def _merge(first: TextUnit, second: TextUnit) -> TextUnit:
    return TextUnit(
        text=f"{first.text} {second.text}",
        stems=first.stems | second.stems,
        numbers=first.numbers | second.numbers,
        negated=first.negated or second.negated,
        clauses=first.clauses + second.clauses,
        words=first.words | second.words,
    )


def judge_claims(
    claims: Sequence[Claim],
    contexts: Sequence[ContextEvidence],
    config: GroundingConfig,
    *,
    claim_vectors: np.ndarray | None = None,
    unit_vectors: Sequence[np.ndarray] | None = None,
) -> GroundingResult:
    """Verdict per claim and the grounding score (see the module docstring for the definition)."""
    scorer = _Scorer(contexts, config, claim_vectors, unit_vectors)
    threshold = config.support_threshold
    verdicts: list[ClaimVerdict] = []
    for index, claim in enumerate(claims):
        cited = [n - 1 for n in claim.citations if 1 <= n <= len(contexts)]
        order = cited + [c for c in range(len(contexts)) if c not in cited]
        support = conflict = unverified = closest = None
        for context in order:
            found = scorer.matches_in(index, claim.unit, context)
            if found.support is not None:
                closest = _better(closest, found.support)
                if found.support.score >= threshold:
                    support = _better(support, found.support)
                    if context in cited:
                        break  # the cited source backs it: no need to look further
            if found.conflict is not None:
                conflict = _better(conflict, found.conflict)
            if found.unverified is not None:
                unverified = _better(unverified, found.unverified)
        if (
            conflict is not None
            and support is not None
            and conflict.score > support.score + config.conflict_margin
        ):
            support = None  # a much closer passage says otherwise
        if support is not None:
            verdict = _verdict(claim, "supported", support, cited)
        elif conflict is not None:
            verdict = _verdict(claim, "contradicted", conflict, cited, reason=conflict.reason)
        elif unverified is not None:
            verdict = _verdict(claim, "unsupported", unverified, cited, reason=unverified.reason)
        else:
            verdict = _verdict(claim, "unsupported", closest, cited, reason="no context matches the claim")
        verdicts.append(verdict)

    counts = {
        status: sum(v.status == status for v in verdicts)
        for status in ("supported", "unsupported", "contradicted")
    }
    score: float | None = None
    if verdicts:
        raw = (counts["supported"] - config.contradiction_penalty * counts["contradicted"]) / len(verdicts)
        score = min(1.0, max(0.0, raw))
    citing = [v for v in verdicts if v.citation_ok is not None]
    citation_accuracy = sum(bool(v.citation_ok) for v in citing) / len(citing) if citing else None
    return GroundingResult(
        score=score,
        verdicts=verdicts,
        supported=counts["supported"],
        unsupported=counts["unsupported"],
        contradicted=counts["contradicted"],
        citation_accuracy=citation_accuracy,
    )


def _verdict(
    claim: Claim, status: ClaimStatus, match: _Match | None, cited: list[int], *, reason: str = ""
) -> ClaimVerdict:
    citation_ok: bool | None = None
    if claim.citations:
        citation_ok = status == "supported" and match is not None and match.context in cited
    return ClaimVerdict(
        claim=claim.text,
        status=status,
        evidence=match.context if match is not None else None,
        evidence_text=match.unit.text if match is not None else None,
        score=round(match.score, 4) if match is not None else 0.0,
        citations=list(claim.citations),
        citation_ok=citation_ok,
        reason=reason,
    )
