"""What people ask and how well evorag answers it: topics of the usage log, weak topics, missing capabilities.

Pure: it takes the usage log's records (``evorag.tools.usage_log``) and an ``embed`` function (the index's
embedder, called once per batch of distinct texts) and returns an ``UsageAnalysis``; it reads and writes nothing.

* Topics: the distinct query texts, embedded and clustered greedily on unit vectors (most frequent text first;
  a text joins the topic whose centroid is closest if the cosine is at least ``threshold``, else starts one),
  then every text is assigned once more to its nearest final centroid, so the result does not hinge on which
  paraphrase came first. Deterministic for a given embedder. A topic is labelled by its most central query and
  its most distinctive words.
* Per topic: volume in the period, the previous period of the same length (trend), the mean quality of its
  answers (overall score, else grounding; an answer saying the docs do not cover it counts 0), the share answered
  from the docs, the mean top retrieval score, and its rephrasings: a query close to (cosine >= ``threshold``) an
  earlier one of the same principal within ``rephrase_window`` seconds, i.e. someone asking again.
* Weak topics: impact = (1 - quality) (the share not answered from the docs when nothing was scored) plus the
  share of rephrasings plus the net share of thumbs-down among its rated answers (thumbs-up count against);
  a topic is weak when its impact reaches ``weak_impact``, or when it got more thumbs-down than up; ranked by
  volume x impact.
* Missing capabilities: rejected or failed evolution requests, clustered like queries (a group some later
  evolution deployed is satisfied and left out), deployed tools whose calls fail, and questions asking evorag to
  transform input they give that no deployed tool does (evorag.tools.transformation_requests), grouped by their
  instruction, when the docs left some unanswered; ranked by count x the share that failed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from evorag.tools.transformation_requests import TransformationAsk, tool_does, transformation_ask
from evorag.tools.usage_log import EvolutionRecord, FeedbackRecord, QueryRecord, ToolCallRecord

Embed = Callable[[Sequence[str]], np.ndarray]

# all-MiniLM-L6-v2 (the local embedder) gives paraphrased doc questions a cosine of ~0.45-0.75 and distinct
# questions about the same docs ~-0.1-0.47; a centroid sits closer to its members than they do to each other.
DEFAULT_THRESHOLD = 0.5
REPHRASE_WINDOW_S = 600.0
WEAK_IMPACT = 0.5
FAILED_EVOLUTIONS = frozenset({"rejected", "model_unavailable", "error"})
EVIDENCE = 20  # queries kept as evidence per weak topic
_WORD = re.compile(r"[a-z][a-z0-9_.-]{2,}")
_STOPWORDS = frozenset({
    "the", "and", "for", "are", "but", "not", "you", "your", "with", "this", "that", "from", "what", "which",
    "when", "where", "how", "why", "who", "does", "did", "can", "could", "should", "would", "will", "there",
    "their", "them", "they", "have", "has", "had", "was", "were", "been", "being", "its", "into", "out",
    "about", "than", "then", "use", "using", "used", "get", "set", "all", "any", "some", "one", "two", "more",
    "most", "other", "such", "only", "own", "same", "very", "just", "also", "off", "per", "via", "let", "make",
    "need", "want", "way", "possible", "please", "tell", "show", "give",
})


@dataclass(slots=True)
class Topic:
    id: int
    label: str  # the most central query
    terms: list[str]
    volume: int
    previous_volume: int
    trend: str  # new | rising | steady | falling | gone
    quality: float | None  # mean answer quality, None when nothing was scored
    answered_share: float | None  # share of the period's queries answered from the docs
    mean_top_score: float | None
    rephrasings: int
    principals: int
    interfaces: dict[str, int]
    queries: list[str]  # distinct texts, most frequent first
    thumbs_up: int = 0  # feedback on the topic's answers in the period
    thumbs_down: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class WeakTopic:
    """A topic the docs serve badly, with the queries behind it (for crawl proposals)."""

    topic: Topic
    impact: float
    score: float  # volume x impact: what the ranking orders by
    reasons: list[str]
    evidence: list[dict]  # the period's queries of the topic, newest first

    def to_dict(self) -> dict:
        return {"topic": self.topic.to_dict(), "impact": self.impact, "score": self.score, "reasons": self.reasons,
                "evidence": self.evidence}


@dataclass(slots=True)
class MissingCapability:
    """Something asked of evorag that it could not do: a group of failed evolution requests, a failing tool, or a
    group of unanswered questions asking for a transformation no tool does."""

    kind: str  # evolution | tool_error | question
    label: str
    count: int  # failures
    impact: float  # share of the group's attempts that failed
    score: float  # count x impact
    principals: int
    evidence: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class UsageAnalysis:
    since: float
    until: float
    totals: dict
    topics: list[Topic] = field(default_factory=list)
    weak_topics: list[WeakTopic] = field(default_factory=list)
    missing_capabilities: list[MissingCapability] = field(default_factory=list)
    tools: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"since": self.since, "until": self.until, "totals": self.totals,
                "topics": [t.to_dict() for t in self.topics],
                "weak_topics": [w.to_dict() for w in self.weak_topics],
                "missing_capabilities": [m.to_dict() for m in self.missing_capabilities], "tools": self.tools}


def normalized_text(text: str) -> str:
    return " ".join(text.lower().split())


def query_quality(record: QueryRecord) -> float | None:
    """The overall score, else grounding; 0 for an answer the docs did not give; None when nothing says."""
    if record.overall is not None:
        return 0.0 if record.not_found else float(record.overall)
    if record.grounding is not None:
        return 0.0 if record.not_found else float(record.grounding)
    return 0.0 if record.not_found else None


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def cluster_texts(texts: Sequence[str], counts: Sequence[int], vectors: np.ndarray,
                  threshold: float = DEFAULT_THRESHOLD) -> list[int]:
    """A cluster index for each text (0..k-1, numbered by first appearance in the greedy order)."""
    if not texts:
        return []
    unit = _unit(vectors)
    order = sorted(range(len(texts)), key=lambda i: (-counts[i], texts[i]))
    sums: list[np.ndarray] = []
    for i in order:
        if sums:
            centroids = _unit(np.stack(sums))
            similarity = centroids @ unit[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                sums[best] = sums[best] + unit[i] * counts[i]
                continue
        sums.append(unit[i] * counts[i])
    # One reassignment to the final centroids, then renumber the clusters that kept members.
    nearest = np.argmax(unit @ _unit(np.stack(sums)).T, axis=1)
    numbering: dict[int, int] = {}
    for i in order:
        numbering.setdefault(int(nearest[i]), len(numbering))
    return [numbering[int(nearest[i])] for i in range(len(texts))]


def _terms(texts_by_cluster: dict[int, list[str]], cluster: int, limit: int = 5) -> list[str]:
    def words(texts: list[str]) -> Counter:
        return Counter(w.strip(".-") for t in texts for w in _WORD.findall(t.lower()) if w.strip(".-") not in _STOPWORDS)

    mine = words(texts_by_cluster[cluster])
    spread = Counter(w for texts in texts_by_cluster.values() for w in set(words(texts)))
    total = len(texts_by_cluster)
    ranked = sorted(mine, key=lambda w: (-mine[w] * math.log(1 + total / spread[w]), w))
    return [w for w in ranked if w][:limit]


def _trend(volume: int, previous: int) -> str:
    if previous == 0:
        return "new" if volume else "steady"
    if volume == 0:
        return "gone"
    ratio = volume / previous
    return "rising" if ratio >= 1.25 else "falling" if ratio <= 0.8 else "steady"


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _groups(texts: list[str], embed: Embed, threshold: float) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Cluster of every distinct (normalized) text, and its unit vector."""
    counts = Counter(normalized_text(t) for t in texts)
    distinct = sorted(counts)
    if not distinct:
        return {}, {}
    vectors = _unit(np.asarray(embed(distinct)))
    clusters = cluster_texts(distinct, [counts[t] for t in distinct], vectors, threshold)
    return dict(zip(distinct, clusters, strict=True)), dict(zip(distinct, vectors, strict=True))


def analyse(queries: Sequence[QueryRecord], tool_calls: Sequence[ToolCallRecord],
            evolutions: Sequence[EvolutionRecord], *, embed: Embed, since: float, until: float,
            threshold: float = DEFAULT_THRESHOLD, rephrase_window: float = REPHRASE_WINDOW_S,
            weak_impact: float = WEAK_IMPACT, feedback: Sequence[FeedbackRecord] = (),
            tools: Sequence[tuple[str, str]] = ()) -> UsageAnalysis:
    """Analyse the period [since, until). ``queries`` may also hold the previous period of the same length
    (for the trend); tool calls, evolutions and ``feedback`` (thumbs up/down) outside the period are ignored.
    ``tools``: the deployed tools' names and descriptions (a transformation one of them does is not missing)."""
    span = until - since
    ok_queries = [q for q in queries if q.error is None and since - span <= q.ts < until]
    current = [q for q in ok_queries if q.ts >= since]
    analysis = UsageAnalysis(since=since, until=until, totals=_totals(
        [q for q in queries if since <= q.ts < until]))
    cluster_of, vector_of = _groups([q.query for q in ok_queries], embed, threshold)
    members: dict[int, list[QueryRecord]] = defaultdict(list)
    for q in ok_queries:
        members[cluster_of[normalized_text(q.query)]].append(q)
    texts_by_cluster = {c: [q.query for q in qs] for c, qs in members.items()}
    votes = _votes_by_cluster([f for f in feedback if since <= f.ts < until], cluster_of, vector_of, members, embed,
                              threshold)
    for cluster in sorted(members):
        topic, weak = _topic(cluster, members[cluster], since, vector_of, texts_by_cluster, threshold,
                             rephrase_window, weak_impact, votes.get(cluster, (0, 0)))
        if topic.volume:
            analysis.topics.append(topic)
            if weak is not None:
                analysis.weak_topics.append(weak)
    analysis.topics.sort(key=lambda t: (-t.volume, t.label))
    analysis.weak_topics.sort(key=lambda w: (-w.score, -w.impact, w.topic.label))
    for number, topic in enumerate(analysis.topics, 1):
        topic.id = number
    period_evolutions = [e for e in evolutions if since <= e.ts < until]
    analysis.missing_capabilities = sorted(
        _failed_evolutions(period_evolutions, embed, threshold) + _failing_tools(
            [c for c in tool_calls if since <= c.ts < until]) + _unserved_transformations(current, tools, embed,
                                                                                        threshold),
        key=lambda m: (-m.score, -m.count, m.label))
    analysis.tools = _tool_summary([c for c in tool_calls if since <= c.ts < until])
    analysis.totals["evolution_requests"] = len(period_evolutions)
    analysis.totals["current_queries_clustered"] = len(current)
    return analysis


def _totals(records: list[QueryRecord]) -> dict:
    latencies = sorted(q.latency_ms for q in records)
    return {
        "queries": len(records),
        "searches": sum(q.kind == "search" for q in records),
        "asks": sum(q.kind == "ask" for q in records),
        "errors": sum(q.error is not None for q in records),
        "by_interface": dict(sorted(Counter(q.interface for q in records).items())),
        "by_principal": dict(Counter(q.principal for q in records).most_common()),
        "mean_latency_ms": _mean(latencies),
        "p95_latency_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
    }


def _topic(cluster: int, records: list[QueryRecord], since: float, vector_of: dict[str, np.ndarray],
           texts_by_cluster: dict[int, list[str]], threshold: float, rephrase_window: float,
           weak_impact: float, votes: tuple[int, int] = (0, 0)) -> tuple[Topic, WeakTopic | None]:
    now = [q for q in records if q.ts >= since]
    ups, downs = votes
    previous = len(records) - len(now)
    counts = Counter(normalized_text(q.query) for q in records)
    shown = {normalized_text(q.query): q.query for q in sorted(records, key=lambda q: q.ts)}
    distinct = sorted(counts, key=lambda t: (-counts[t], t))
    centroid = _unit(sum(vector_of[t] * counts[t] for t in distinct))
    label = shown[max(distinct, key=lambda t: (float(vector_of[t] @ centroid), counts[t], t))]
    rephrased = _rephrasings(now, vector_of, threshold, rephrase_window)
    qualities = [v for v in (query_quality(q) for q in now) if v is not None]
    quality = _mean(qualities)
    answered = _mean([0.0 if q.not_found else 1.0 for q in now])
    topic = Topic(
        id=cluster, label=label, terms=_terms(texts_by_cluster, cluster), volume=len(now), previous_volume=previous,
        trend=_trend(len(now), previous), quality=quality, answered_share=answered,
        mean_top_score=_mean([q.top_score for q in now if q.top_score is not None]),
        rephrasings=len(rephrased), principals=len({q.principal for q in now}),
        interfaces=dict(sorted(Counter(q.interface for q in now).items())),
        queries=[shown[t] for t in distinct][:10], thumbs_up=ups, thumbs_down=downs)
    if not now:
        return topic, None
    rephrase_share = len(rephrased) / len(now)
    base = (1.0 - quality) if quality is not None else (1.0 - answered if answered is not None else 0.0)
    # People's verdict next to the scores: the net share of thumbs-down among the rated answers raises the impact,
    # a net thumbs-up lowers it; more thumbs-down than up makes the topic weak whatever the scores say.
    verdict = (downs - ups) / (downs + ups) if downs + ups else 0.0
    impact = round(max(0.0, base + rephrase_share + verdict), 4)
    if impact < weak_impact and downs <= ups:
        return topic, None
    reasons = []
    if quality is not None and quality < 1.0 - weak_impact / 2:
        reasons.append(f"low answer quality ({quality:.2f})")
    groundings = [q.grounding for q in now if q.grounding is not None]
    if groundings and _mean(groundings) < 0.5:
        reasons.append(f"low grounding ({_mean(groundings):.2f})")
    if answered is not None and answered < 1.0:
        reasons.append(f"{round((1 - answered) * 100)}% not answered from the docs")
    if rephrased:
        reasons.append(f"{len(rephrased)} rephrasing(s) of the same question")
    if downs:
        reasons.append(f"{downs} thumbs-down" + (f" ({ups} up)" if ups else ""))
    evidence = [{"query": q.query, "ts": q.ts, "kind": q.kind, "principal": q.principal, "interface": q.interface,
                 "quality": query_quality(q), "not_found": q.not_found, "top_score": q.top_score,
                 "rephrasing": q.id in rephrased if q.id is not None else False}
                for q in sorted(now, key=lambda q: -q.ts)[:EVIDENCE]]
    return topic, WeakTopic(topic=topic, impact=impact, score=round(len(now) * impact, 4), reasons=reasons,
                            evidence=evidence)


def _votes_by_cluster(feedback: Sequence[FeedbackRecord], cluster_of: dict[str, int],
                      vector_of: dict[str, np.ndarray], members: dict[int, list[QueryRecord]], embed: Embed,
                      threshold: float) -> dict[int, tuple[int, int]]:
    """(thumbs up, thumbs down) per cluster: a feedback's question joins its own query's cluster, else (asked
    before the period) the cluster whose centroid is nearest, if the cosine reaches ``threshold``."""
    votes: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    unplaced: list[FeedbackRecord] = []
    for f in feedback:
        cluster = cluster_of.get(normalized_text(f.query))
        if cluster is None:
            unplaced.append(f)
        else:
            votes[cluster][0 if f.value > 0 else 1] += 1
    if unplaced and members:
        clusters = sorted(members)
        centroids = _unit(np.stack([sum(vector_of[normalized_text(q.query)] for q in members[c]) for c in clusters]))
        similarity = _unit(np.asarray(embed([f.query for f in unplaced]))) @ centroids.T
        for f, row in zip(unplaced, similarity, strict=True):
            best = int(np.argmax(row))
            if row[best] >= threshold:
                votes[clusters[best]][0 if f.value > 0 else 1] += 1
    return {c: (up, down) for c, (up, down) in votes.items()}


def _rephrasings(records: list[QueryRecord], vector_of: dict[str, np.ndarray], threshold: float,
                 window: float) -> set[int | None]:
    """Ids of the queries that repeat (closely) an earlier one of the same principal within ``window`` s."""
    found: set[int | None] = set()
    by_principal: dict[str, list[QueryRecord]] = defaultdict(list)
    for q in sorted(records, key=lambda q: (q.ts, q.id or 0)):
        vector = vector_of[normalized_text(q.query)]
        earlier = by_principal[q.principal]
        if any(q.ts - e.ts <= window and float(vector_of[normalized_text(e.query)] @ vector) >= threshold
               for e in earlier):
            found.add(q.id if q.id is not None else id(q))
        earlier.append(q)
    return found


def _failed_evolutions(evolutions: list[EvolutionRecord], embed: Embed, threshold: float) -> list[MissingCapability]:
    if not evolutions:
        return []
    cluster_of, _ = _groups([e.request for e in evolutions], embed, threshold)
    groups: dict[int, list[EvolutionRecord]] = defaultdict(list)
    for e in evolutions:
        groups[cluster_of[normalized_text(e.request)]].append(e)
    found = []
    for records in groups.values():
        failed = [e for e in records if e.outcome in FAILED_EVOLUTIONS]
        if not failed:
            continue
        last_failure = max(e.ts for e in failed)
        if any(e.outcome == "deployed" and e.ts >= last_failure for e in records):
            continue  # asked for, failed, then built: no longer missing
        counts = Counter(normalized_text(e.request) for e in failed)
        shown = {normalized_text(e.request): e.request for e in failed}
        label = shown[min(counts, key=lambda t: (-counts[t], t))]
        impact = round(len(failed) / len(records), 4)
        evidence = [f"{e.request} ({e.outcome}" + (f": {e.reason}" if e.reason else "") + ")"
                    for e in sorted(failed, key=lambda e: -e.ts)[:EVIDENCE]]
        found.append(MissingCapability(kind="evolution", label=label, count=len(failed), impact=impact,
                                       score=round(len(failed) * impact, 4),
                                       principals=len({e.principal for e in failed}), evidence=evidence))
    return found


def _unserved_transformations(queries: list[QueryRecord], tools: Sequence[tuple[str, str]], embed: Embed,
                              threshold: float) -> list[MissingCapability]:
    """Questions asking evorag to transform input they give that no deployed tool does, grouped by their
    instruction (the request without its input) like evolution requests; a group the docs always answered is
    left out. Impact: the share of the group's questions not answered from the docs."""
    asked = [(q, ask) for q in queries if q.kind == "ask"
             for ask in [transformation_ask(q.query)] if ask is not None and tool_does(ask, tools) is None]
    if not any(q.not_found for q, _ in asked):
        return []
    cluster_of, _ = _groups([ask.instruction for _, ask in asked], embed, threshold)
    groups: dict[int, list[tuple[QueryRecord, TransformationAsk]]] = defaultdict(list)
    for q, ask in asked:
        groups[cluster_of[normalized_text(ask.instruction)]].append((q, ask))
    found = []
    for items in groups.values():
        failed = [(q, ask) for q, ask in items if q.not_found]
        if not failed:
            continue
        counts = Counter(ask.instruction for _, ask in failed)
        impact = round(len(failed) / len(items), 4)
        found.append(MissingCapability(
            kind="question", label=min(counts, key=lambda text: (-counts[text], text)), count=len(failed),
            impact=impact, score=round(len(failed) * impact, 4), principals=len({q.principal for q, _ in failed}),
            evidence=[q.query[:200] for q, _ in sorted(failed, key=lambda item: -item[0].ts)[:EVIDENCE]]))
    return found


def _failing_tools(calls: list[ToolCallRecord]) -> list[MissingCapability]:
    by_tool: dict[str, list[ToolCallRecord]] = defaultdict(list)
    for call in calls:
        by_tool[call.tool].append(call)
    found = []
    for tool, records in sorted(by_tool.items()):
        failed = [c for c in records if not c.ok]
        if not failed:
            continue
        impact = round(len(failed) / len(records), 4)
        errors = Counter(c.error or "error" for c in failed)
        found.append(MissingCapability(kind="tool_error", label=tool, count=len(failed), impact=impact,
                                       score=round(len(failed) * impact, 4),
                                       principals=len({c.principal for c in failed}),
                                       evidence=[f"{error} (x{n})" for error, n in errors.most_common(5)]))
    return found


def _tool_summary(calls: list[ToolCallRecord]) -> list[dict]:
    by_tool: dict[str, list[ToolCallRecord]] = defaultdict(list)
    for call in calls:
        by_tool[call.tool].append(call)
    return [{"tool": tool, "calls": len(records), "errors": sum(not c.ok for c in records),
             "mean_latency_ms": _mean([c.latency_ms for c in records])}
            for tool, records in sorted(by_tool.items(), key=lambda item: (-len(item[1]), item[0]))]


def weak_topics(analysis: UsageAnalysis) -> list[WeakTopic]:
    """The weak topics, worst (volume x impact) first, each with the queries behind it."""
    return list(analysis.weak_topics)
