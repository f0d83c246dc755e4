"""What a healing description is about: the deployed tools, sources and metrics it names or describes.

``heal "shout_text returns wrong case"`` is about the tool ``shout_text``; ``heal "answers look wrong"`` is about
answer quality (the ``overall`` and ``grounding`` metrics); ``heal "the flask pages are gone"`` is about the
source ``flask``. Ranking is term overlap between the description and each candidate's words (its name, split at
``_``/``-``/``.``/``/``, and its documentation), deterministic and without a model, so that the same description
always focuses the same checks. A candidate named outright (``word_count``) ranks above any partial match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# Words that say nothing about which part is meant ("the tool returns wrong results").
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "does", "for", "from", "has", "have", "in", "is",
    "it", "its", "look", "looks", "of", "on", "or", "seem", "seems", "that", "the", "their", "them", "there",
    "these", "this", "to", "was", "were", "what", "when", "with", "wrong", "broken", "bad", "fails", "failing",
    "error", "errors", "not", "no", "tool", "tools", "source", "sources", "metric", "metrics", "http", "https",
    "www", "com", "org", "io", "html", "htm", "index",
))
# What a user says about answer quality, mapped to the metrics that measure it.
_QUALITY_WORDS = {
    "answer": ("overall", "grounding"), "answers": ("overall", "grounding"), "quality": ("overall",),
    "grounded": ("grounding",), "grounding": ("grounding",), "hallucinate": ("grounding",),
    "hallucinates": ("grounding",), "citations": ("grounding",), "cited": ("grounding",),
    "retrieval": ("ndcg",), "ranking": ("ndcg",), "relevance": ("ndcg",), "search": ("ndcg",),
    "code": ("code_quality",), "summary": ("rougeL",), "summaries": ("rougeL",),
}
_MIN_SCORE = 0.2


@dataclass(slots=True, frozen=True)
class Target:
    kind: str  # "tool", "source" or "metric"
    name: str
    score: float  # 0..1: how much of the candidate's name the description covers, plus its docs' overlap

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        return f"{self.kind} {self.name}"


def words(text: str) -> list[str]:
    """Lower-case words of ``text``: letters and digits, split at any other character (``word_count`` is
    ``word``, ``count``); stop words dropped."""
    return [w for w in re.findall(r"[a-z0-9]+", str(text or "").lower()) if w not in _STOP]


def _stem(word: str) -> str:
    """A crude plural/verb stem so that ``counts`` meets ``count`` (enough for names and one-line docs)."""
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _named(description: str, name: str) -> bool:
    return bool(name) and re.search(rf"(?<![a-z0-9_]){re.escape(name.lower())}(?![a-z0-9_])",
                                    description.lower()) is not None


def _score(description: str, said: set[str], name: str, docs: str) -> float:
    if _named(description, name):
        return 1.0
    name_terms = {_stem(w) for w in words(name)}
    doc_terms = {_stem(w) for w in words(docs)} - name_terms
    name_part = len(name_terms & said) / len(name_terms) if name_terms else 0.0
    doc_part = min(1.0, len(doc_terms & said) / 2)  # two words of its docs are as good as its whole name
    return round(min(0.9, 0.7 * name_part + 0.4 * doc_part), 3)


def rank_targets(description: str, *, tools: Iterable[tuple[str, str]] = (),
                 sources: Iterable[tuple[str, str]] = (), metrics: Iterable[str] = ()) -> list[Target]:
    """The candidates ``description`` is about, best first (ties by kind, then name; deterministic).

    ``tools`` and ``sources`` are (name, documentation) pairs: a tool's description and request, a source's
    start URL. A metric is about the description when the description names it or uses a word that measures it
    ("answers", "citations", "search"...). Candidates scoring below 0.2 are left out."""
    tools, sources, metrics = list(tools), list(sources), list(metrics)
    said = {_stem(w) for w in words(description)}
    # The words of a name said outright are spent on it: "shout_text" says nothing about other tools' "text".
    for name in [n for n, _ in tools + sources] + metrics:
        if _named(description, name):
            said -= {_stem(w) for w in words(name)}
    found: list[Target] = []
    for kind, pairs in (("tool", tools), ("source", sources)):
        for name, docs in pairs:
            score = _score(description, said, name, docs)
            if score >= _MIN_SCORE:
                found.append(Target(kind, name, score))
    quality = {metric for word in words(description) for metric in _QUALITY_WORDS.get(word, ())}
    for metric in metrics:
        score = _score(description, said, metric, "")
        if metric in quality:
            score = max(score, 0.6)
        if score >= _MIN_SCORE:
            found.append(Target("metric", metric, score))
    order = {"tool": 0, "source": 1, "metric": 2}
    return sorted(found, key=lambda t: (-t.score, order[t.kind], t.name))


def about_line(targets: list[Target]) -> str:
    """``about: tool word_count, source flask`` (``about: nothing named; checking everything`` when empty)."""
    if not targets:
        return "about: nothing named; checking everything"
    return "about: " + ", ".join(t.label() for t in targets)
