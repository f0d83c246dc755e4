"""Proposals from weak topics, missing features and anomalies: crawls of pages evorag knows of but has not
indexed, evolution requests for tools it lacks, each with the queries behind it, and heal runs for a metric stream's
anomaly that a health check can explain, with the alert as evidence; kept in ``EVORAG_HOME/proposals.sqlite3``.

Inputs are small value types, so any analysis can feed them: ``WeakTopic`` (a label, the queries answered
badly, an impact) and ``MissingFeature`` (a label, the requests, an impact). ``weak_topics_from_answers`` and
``missing_features_from_audit`` derive them from what evorag records already (answer reports, the evolution
audit log), grouping queries that share most of their terms.

Matching a topic with candidate URLs is deterministic and explainable: a candidate's terms are the words of its
URL path (and title, for package docs the package name); a query supports it with every term they share. A
crawl proposal names the best ``max_urls`` candidates, each with its matched terms and where it was found.
Package documentation is only proposed for a topic whose queries name the package.

A heal proposal is made only for a stream in ``HEAL_CHECKS`` (a check exists that can find its cause). Its heal
description is written from the alert's numbers and the stream's fixed wording only: the question that showed the
anomaly is user text and never reaches the healing team.

A proposal's status: ``proposed`` (waiting in the approval queue) -> ``approved`` (its crawl or evolution
request is queued) -> ``done`` (with its effect: the topic's scores before and after) or ``failed``; or
``rejected``; or ``expired`` (nobody answered its approval in time). The same proposal (same kind and targets) is
made once: a rejected one is not proposed again, and a page waiting in one proposal is not proposed in another;
an expired one may be made again by a later analysis (it was never decided; its row stays, under a retired
fingerprint).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

from evorag.tools.metric_anomalies import Alert
from evorag.tools.sparse import tokenize
from evorag.tools.sqlite_tx import immediate_transaction

from evorag.errors import NotFoundError, UserError

PROPOSALS_FILE = "proposals.sqlite3"
Status = Literal["proposed", "approved", "rejected", "expired", "done", "failed"]
STATUSES: tuple[str, ...] = ("proposed", "approved", "rejected", "expired", "done", "failed")
# Words every documentation URL has: they say nothing about a topic.
_URL_NOISE = frozenset({"html", "htm", "php", "aspx", "index", "www", "http", "https", "doc", "docs", "en", "latest",
                        "stable", "org", "com", "io", "net", "dev", "readthedoc", "readthedocs", "github", "page"})
_SAME_TOPIC = 0.5  # share of the shorter query's terms another must have to be of the same topic


@dataclass(frozen=True, slots=True)
class WeakTopic:
    """Questions on one subject that were answered badly; ``impact`` ranks topics (higher first)."""

    label: str
    queries: tuple[str, ...]
    impact: float = 1.0


@dataclass(frozen=True, slots=True)
class MissingFeature:
    """Requests for a capability evorag lacks (failed or rejected evolutions, or an analysis's findings)."""

    label: str
    requests: tuple[str, ...]
    impact: float = 1.0


# The metric streams (evorag.tools.metric_anomalies) whose anomaly a healing check can explain: what the
# stream's drop means, and the checks (teams/_healing.run_health_checks) that look for its cause. Latency has
# none: no healing check measures speed or load, so a latency alert stays an alert.
HEAL_CHECKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "answer_quality": ("the answer quality dropped", ("answer_quality", "source:*")),
    "grounding": ("the answers' grounding in the sources dropped", ("answer_quality", "source:*")),
    "retrieval_ndcg": ("the retrieval ranking got worse",
                       ("index_alias", "embedder_setting", "index_consistency", "source:*")),
}
_ALERT_KINDS = frozenset({"spike", "shift", "drift"})
_DIRECTIONS = frozenset({"up", "down"})


class WeakTopicSource(Protocol):
    """Anything that lists weak topics (e.g. a usage analysis): called with no arguments."""

    def __call__(self) -> Sequence[WeakTopic]: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A URL evorag knows of but has not indexed. ``origin``: sitemap, llms.txt, link, known (an earlier
    crawl's page), outbound (a link to another site) or package docs; ``found_in``: the source (or package)."""

    url: str
    origin: str
    found_in: str
    reason: str = ""
    title: str = ""


@dataclass(slots=True)
class Proposal:
    id: str
    kind: Literal["crawl", "tool", "heal"]
    topic: str
    evidence: list[str]
    score: float
    urls: list[str] = field(default_factory=list)  # crawl: the pages to crawl
    request: str = ""  # tool: the evolution request written for the team; heal: the heal description
    reasons: list[dict] = field(default_factory=list)  # crawl: per URL, where it was found and the matched terms
    status: str = "proposed"
    approval_id: str | None = None
    request_id: str | None = None  # the queued crawl, evolution or heal, once approved
    effect: dict | None = None  # done: the topic's scores before and after (heal: the healing's outcome)
    error: str | None = None
    created_at: float = 0.0
    decided_at: float | None = None
    decided_by: str | None = None
    alert: dict | None = None  # heal: the alert (stream, kind, direction, value, baseline, when, the checks)

    @property
    def target(self) -> str:
        return ", ".join(self.urls) if self.kind == "crawl" else self.request

    @property
    def fingerprint(self) -> str:
        if self.kind == "heal" and self.alert:  # one proposal per alert
            return f"heal:{self.alert.get('stream')}:{self.alert.get('record_id')}"
        return f"{self.kind}:" + ("\n".join(sorted(self.urls)) if self.kind == "crawl" else self.topic.lower())

    def to_dict(self) -> dict:
        return asdict(self) | {"target": self.target}


# Topics from what evorag records
def is_weak_answer(row: dict, threshold: float) -> bool:
    """The rule of teams/_gaps: answered without a model or from no sources, or a score under ``threshold``."""
    values = [row.get("grounding"), row.get("ndcg")]
    return row.get("model") in ("extractive", "none") or any(v is not None and v < threshold for v in values)


def group_queries(queries: Iterable[str]) -> list[list[str]]:
    """Queries grouped greedily, in order: a query joins the first group that has at least ``_SAME_TOPIC`` of
    its terms or of the group's (whichever has fewer), else starts one. Deterministic for a given order."""
    groups: list[tuple[set[str], list[str]]] = []
    for query in dict.fromkeys(q.strip() for q in queries if q and q.strip()):
        terms = set(tokenize(query))
        for group_terms, members in groups:
            smaller = min(len(terms), len(group_terms))
            if smaller and len(terms & group_terms) / smaller >= _SAME_TOPIC:
                members.append(query)
                group_terms |= terms
                break
        else:
            groups.append((terms, [query]))
    return [members for _, members in groups]


def topic_label(queries: Sequence[str], words: int = 3) -> str:
    counts = Counter(term for query in queries for term in dict.fromkeys(tokenize(query)))
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:words]
    return " ".join(term for term, _ in top) or queries[0][:40]


def weak_topics_from_answers(history: Sequence[dict], *, threshold: float = 0.5) -> list[WeakTopic]:
    """Weak topics from answer reports (metrics store rows): weak answers grouped by shared terms; impact =
    weak answers x (1 - their mean overall score), so frequent and badly answered topics come first."""
    weak: dict[str, list[float]] = {}
    for row in history:
        if row.get("query") and is_weak_answer(row, threshold):
            weak.setdefault(row["query"].strip(), []).append(float(row.get("overall") or 0.0))
    topics = []
    for queries in group_queries(weak):
        scores = [score for query in queries for score in weak[query]]
        impact = len(scores) * (1.0 - sum(scores) / len(scores))
        topics.append(WeakTopic(topic_label(queries), tuple(queries), round(impact, 4)))
    return sorted(topics, key=lambda t: (-t.impact, t.label))


def missing_features_from_audit(entries: Sequence[dict]) -> list[MissingFeature]:
    """Requests of evolutions that were rejected and never deployed (audit log entries), grouped by shared
    terms; impact = how many times it was asked for."""
    requests = {e["run_id"]: str(e.get("request") or "") for e in entries
                if e.get("event") == "candidate" and e.get("run_id")}
    rejected = {e["run_id"] for e in entries if e.get("event") == "rejected" and e.get("run_id")}
    deployed = {e["run_id"] for e in entries if e.get("event") == "deployed" and e.get("run_id")}
    asked = [requests[run] for run in requests if run in rejected - deployed and requests[run].strip()]
    counts = Counter(request.strip() for request in asked)
    features = []
    for group in group_queries(asked):
        features.append(MissingFeature(topic_label(group), tuple(group), float(sum(counts[r] for r in group))))
    return sorted(features, key=lambda f: (-f.impact, f.label))


# Matching
def candidate_terms(candidate: Candidate) -> set[str]:
    """The words a candidate is matched on: its URL path (for package docs also the host), and its title."""
    parts = urlsplit(candidate.url)
    where = unquote(parts.path)
    if candidate.origin == "package docs":
        where = f"{parts.hostname or ''} {where}"
    words = " ".join(re.split(r"[/._\-~]+", where)) + " " + candidate.title
    return {t for t in tokenize(words) if t not in _URL_NOISE and not t.isdigit()}


MIN_SHARE_OF_BEST = 0.5  # a proposed candidate's points, as a share of the best candidate's


def crawl_proposal(topic: WeakTopic, candidates: Sequence[Candidate], *, max_urls: int = 5) -> Proposal | None:
    """A crawl proposal for ``topic``: the candidates its queries share terms with, best first (points = the
    shared terms summed over the queries; candidates under half the best one's points are left out); None when
    no candidate matches. Score = impact x the best
    candidate's share of the topic's terms."""
    query_terms = [set(tokenize(query)) for query in topic.queries]
    all_terms = set().union(*query_terms) if query_terms else set()
    if not all_terms:
        return None
    matches = []
    for candidate in candidates:
        terms = candidate_terms(candidate)
        matched = sorted(all_terms & terms)
        if not matched:
            continue
        # A package's docs only for questions that name the package: all of its name's terms, so a word of a
        # compound name ("timeout" of pytest-timeout, "json" of dataclasses-json) names nothing.
        if candidate.origin == "package docs" and not set(tokenize(candidate.found_in)) <= all_terms:
            continue
        points = sum(len(q & terms) for q in query_terms)
        matches.append((points, len(matched), candidate, matched))
    if not matches:
        return None
    matches.sort(key=lambda m: (-m[0], -m[1], m[2].url))
    # A page the topic's questions barely touch (one shared word in one question) is not what they ask about:
    # only candidates with at least half the best candidate's support are proposed.
    floor = matches[0][0] * MIN_SHARE_OF_BEST
    chosen: dict[str, tuple] = {}
    for match in (m for m in matches if m[0] >= floor):
        chosen.setdefault(match[2].url, match)
        if len(chosen) == max_urls:
            break
    best = max(m[1] for m in chosen.values()) / len(all_terms)
    reasons = [{"url": c.url, "origin": c.origin, "found_in": c.found_in, "reason": c.reason,
                "matched_terms": matched, "points": points} for points, _, c, matched in chosen.values()]
    return Proposal(id="", kind="crawl", topic=topic.label, evidence=list(topic.queries),
                    score=round(topic.impact * best, 4), urls=list(chosen), reasons=reasons)


def tool_proposal(feature: MissingFeature) -> Proposal:
    """A tool proposal: an evolution request for the team, written from the requests behind it."""
    asked = "\n".join(f"- {request}" for request in feature.requests[:10])
    request = (f"Build an MCP tool for a capability users keep asking for and evorag lacks ({feature.label}). "
               f"It was asked for {len(feature.requests)} way(s):\n{asked}")
    return Proposal(id="", kind="tool", topic=feature.label, evidence=list(feature.requests),
                    score=round(feature.impact, 4), request=request)


def heal_proposal(alerts: Sequence[Alert]) -> Proposal | None:
    """A heal proposal for the first of ``alerts`` (new alerts of one stream; the others are evidence too), or
    None when no health check applies to the stream. Score = the first alert's |z|."""
    if not alerts or alerts[0].metric not in HEAL_CHECKS:
        return None
    first = alerts[0]
    meaning, checks = HEAL_CHECKS[first.metric]
    kind = first.kind if first.kind in _ALERT_KINDS else "anomaly"
    direction = first.direction if first.direction in _DIRECTIONS else "down"
    record = int(first.record_id) if first.record_id is not None else None
    when = _utc(first.created_at)
    value, baseline, z = float(first.value), float(first.expected), float(first.z)
    # Written from the allowlisted names and the numbers only (see the module docstring).
    description = (f"{meaning}: the {first.metric} stream shows a {kind} {direction} to {value:.4g} against a "
                   f"baseline of {baseline:.4g} (z {z:.3g}), from answer record {record if record is not None else '?'}"
                   f" at {when}. Run the health checks ({', '.join(checks)}) and fix what they find.")
    alert = {"stream": first.metric, "kind": kind, "direction": direction, "value": value, "baseline": baseline,
             "z": z, "record_id": record, "created_at": first.created_at, "when": when, "checks": list(checks)}
    evidence = [f"{a.metric} {a.kind} {a.direction}: {float(a.value):.4g} against {float(a.expected):.4g} "
                f"(answer record {a.record_id}, {_utc(a.created_at)})" for a in alerts[:10]]
    return Proposal(id="", kind="heal", topic=f"{first.metric} {kind} {direction}", evidence=evidence,
                    score=round(abs(z), 4), request=description, alert=alert)


def _utc(ts: float | None) -> str:
    if not isinstance(ts, int | float):
        return "an unknown time"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))


# The store
_SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    approval_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS proposals_by_approval ON proposals(approval_id);
"""


class ProposalStore:
    """Proposals under EVORAG_HOME (SQLite, WAL), shared by the processes of a home."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, proposal: Proposal) -> Proposal | None:
        """Store a new proposal (given an id); None if the same proposal was made before and decided or is still
        pending. An expired one of the same fingerprint keeps its row, its fingerprint retired."""
        proposal.id = proposal.id or uuid.uuid4().hex[:10]
        proposal.created_at = proposal.created_at or time.time()
        with self._lock, immediate_transaction(self._db) as db:
            db.execute("UPDATE proposals SET fingerprint = fingerprint || ' (expired ' || id || ')' "
                       "WHERE fingerprint=? AND status='expired'", (proposal.fingerprint,))
            cursor = db.execute("INSERT OR IGNORE INTO proposals(id, fingerprint, status, approval_id, body) "
                                "VALUES (?, ?, ?, ?, ?)", (proposal.id, proposal.fingerprint, proposal.status,
                                                           proposal.approval_id, json.dumps(proposal.to_dict())))
        return proposal if cursor.rowcount else None

    def save(self, proposal: Proposal) -> Proposal:
        with self._lock, immediate_transaction(self._db) as db:
            db.execute("UPDATE proposals SET status=?, approval_id=?, body=? WHERE id=?",
                       (proposal.status, proposal.approval_id, json.dumps(proposal.to_dict()), proposal.id))
        return proposal

    def get(self, proposal_id: str) -> Proposal:
        row = self._db.execute("SELECT body FROM proposals WHERE id=?", (proposal_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no proposal {proposal_id!r}", hint="see `evorag proposals`")
        return _load(row["body"])

    def by_approval(self, approval_id: str) -> Proposal | None:
        row = self._db.execute("SELECT body FROM proposals WHERE approval_id=?", (approval_id,)).fetchone()
        return _load(row["body"]) if row else None

    def proposals(self, *, status: str | None = None, limit: int = 100) -> list[Proposal]:
        """Newest first."""
        if status is not None and status not in STATUSES:
            raise UserError(f"unknown proposal status {status!r}", hint="one of: " + ", ".join(STATUSES))
        where, args = ("WHERE status=?", [status]) if status else ("", [])
        rows = self._db.execute(f"SELECT body FROM proposals {where} ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [_load(row["body"]) for row in rows]


def _load(body: str) -> Proposal:
    data = json.loads(body)
    data.pop("target", None)
    return Proposal(**data)
