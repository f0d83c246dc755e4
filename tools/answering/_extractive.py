"""The answer given without a language model: the sentences of the sources that answer the question, cited.

Every passage is cut into units (sentences, list items, table rows, definition terms, code blocks; see
``_units.py``). A prose unit's relevance to the question is

    relevance = w * cosine(question, unit) + (1 - w) * term_match(question, unit)

with the embedding model the index uses (units embedded in one batch, each text once per process: the same
chunks come back for related questions) and ``term_match`` a BM25-style score over the units of this answer:
the question's terms (stemmed, identifiers split as the index splits them, tools/sparse.py) found in the unit,
each weighted by its IDF among the units and saturated by its count, divided by the score of a unit holding
every term once. A unit under a heading that restates the question (cosine at least ``min_heading_similarity``:
a FAQ entry) takes the heading's cosine. The retrieval score of the unit's passage is added as a prior. Units are
then picked by maximal marginal relevance (a unit too close to one already picked adds little; one closer than
``max_redundancy`` is never shown) while their relevance without the prior stays within ``min_relative`` of the
best one's and within the length budget. The picked units are shown in source order (passages in the order of
their best unit, units in page order), each cited ``[n]`` with its passage. A code block is shown whole, never
cut: the one right after a picked sentence that introduces it (ending in ":"), or one whose identifiers the
question names.

When the best unit is far from the question (cosine below ``min_similarity``) or the sources lack most of the
question's terms (coverage below ``min_coverage``), the sources do not answer it: the answer says "Not found
in the indexed docs" and names the closest pages instead of quoting an unrelated sentence. bench/bench_answers.py
measures both sides of that decision: docs-dev questions asked of their own site's index (answerable) and of
the other site's (not).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from evorag.tools.answering._context import Passage
from evorag.tools.answering._units import Unit, passage_units
from evorag.tools.sparse import tokenize

EmbedFn = Callable[[list[str]], np.ndarray]

NOT_FOUND = "Not found in the indexed docs"
NOTHING_INDEXED = "The indexed documentation has nothing on this question."

# Identifier-shaped words of a question ("app.test_client", "tmp_path", "getElementById", "--lf", "abort()"):
# a code block containing one of them answers a question that names it.
_IDENTIFIER = re.compile(r"(?:--?[a-z][\w-]+|@?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z]\w*_\w+|[a-z]+[A-Z]\w*"
                         r"|[A-Za-z_]\w*(?=\())")
# A sentence about the code block before it ("The code above limits ...", "This example shows ...").
_REFERS_BACK = re.compile(r"\b(?:above|this (?:code|example|snippet)|the (?:code|example|snippet) (?:above|before))\b",
                          re.IGNORECASE)
_EMBED_CHARS = 600  # of a code block: the model reads 256 word pieces at most
_MARKUP = re.compile(r"`+|\*\*|__|!?\[([^\]]*)\]\([^)]*\)")


@dataclass(slots=True)
class ExtractiveConfig:
    semantic_weight: float = 0.7  # w above; without an embedder the relevance is the term match alone
    passage_weight: float = 0.4  # weight of the passage's retrieval score (the best passage's is 1)
    mmr_lambda: float = 0.7  # relevance against redundancy when picking the next unit
    max_redundancy: float = 0.9  # a unit this close (cosine) to one already picked says it again: never shown
    min_relative: float = 0.7  # a unit is kept only while its relevance is at least this share of the best
    min_unit_similarity: float = 0.0  # and its cosine to the question at least this (the best unit always)
    max_units: int = 5
    prose_chars: int = 500  # length budget of the prose
    code_chars: int = 1200  # and of the code blocks shown (each whole)
    max_code_blocks: int = 2
    min_code_relative: float = 0.6  # a code block next to a picked sentence, relevant on its own
    # "Not found": the question is not answered when the best unit's cosine or the sources' coverage of the
    # question's terms is below these (chosen on docs-dev, see the module docstring).
    min_similarity: float = 0.51
    min_heading_similarity: float = 0.8  # a heading this close to the question lends its units its similarity
    min_coverage: float = 0.25
    closest_pages: int = 3
    cache_size: int = 20_000  # unit texts whose vectors are kept


@dataclass(slots=True)
class ExtractiveAnswer:
    """The extractive answer to a question: its text (units cited ``[n]``), or, when ``found`` is False, the
    "not found" statement with the ``closest`` pages; ``signals`` are what the not-found decision read."""

    text: str
    found: bool
    units: list[Unit] = field(default_factory=list)
    closest: list[dict] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why the sources do not answer, when they do not


class _VectorCache:
    """Unit vectors by text, least recently used first out; embeds what is missing in one batch."""

    def __init__(self, embed: EmbedFn, size: int) -> None:
        self._embed = embed
        self._size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = np.asarray(self._embed(missing), dtype=np.float32)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    known[text] = self._vectors[text] = vector
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        matrix = np.stack([known[text] for text in texts])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)


def _plain(text: str) -> str:
    """What a unit says, without Markdown: what is embedded and tokenized."""
    return re.sub(r"\s+", " ", _MARKUP.sub(lambda m: m.group(1) or "", text)).strip()


def _term_match(question_terms: list[str], unit_terms: list[Counter], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 of each unit for the question's terms, over these units, divided by a perfect unit's score."""
    count = len(unit_terms)
    if not count or not question_terms:
        return np.zeros(count)
    lengths = np.array([sum(terms.values()) for terms in unit_terms], dtype=float)
    average = max(float(lengths.mean()), 1.0)
    scores = np.zeros(count)
    total = 0.0
    for term in question_terms:
        holding = sum(1 for terms in unit_terms if term in terms)
        idf = math.log(1.0 + (count - holding + 0.5) / (holding + 0.5))
        total += idf
        if not holding:
            continue
        tf = np.array([terms.get(term, 0) for terms in unit_terms], dtype=float)
        scores += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / average)) / (k1 + 1)
    return scores / total if total > 0 else scores


def _heading(section: str) -> str:
    """The innermost heading of a section path ("Getting started > Installation" -> "Installation")."""
    return _plain(section.rsplit(" > ", 1)[-1]) or "-"


def question_identifiers(question: str) -> set[str]:
    """Identifier-shaped words of the question, lowercased, without call parentheses or a leading ``@``."""
    return {match.group(0).lstrip("@").lower() for match in _IDENTIFIER.finditer(question)}


def closest_pages(passages: Sequence[Passage], limit: int) -> list[dict]:
    """The pages of the best passages, each once: what a reader may look at when nothing answers."""
    pages: dict[str, dict] = {}
    for passage in passages:
        if passage.url not in pages:
            pages[passage.url] = {"title": passage.title, "url": passage.url, "section": passage.section}
    return list(pages.values())[:limit]


def not_found_text(pages: Sequence[dict]) -> str:
    lines = [f"{NOT_FOUND}: none of the retrieved passages answers this question."]
    if pages:
        lines.append("The closest pages:")
        lines += [f"- {page['title']}: {page['url']}" for page in pages]
    return "\n".join(lines)


class ExtractiveAnswerer:
    """Builds extractive answers; holds the embedding function and the unit-vector cache (thread-safe)."""

    def __init__(self, embed: EmbedFn | None = None, config: ExtractiveConfig | None = None) -> None:
        self.config = config or ExtractiveConfig()
        self._cache = _VectorCache(embed, self.config.cache_size) if embed is not None else None

    def answer(self, question: str, passages: Sequence[Passage]) -> ExtractiveAnswer:
        """The cited extractive answer to ``question`` from ``passages``, or the "not found" statement."""
        config = self.config
        if not passages:
            return ExtractiveAnswer(NOTHING_INDEXED, found=False, reason="no sources matched the question")
        units = [unit for passage in passages for unit in passage_units(passage.number, passage.text,
                                                                         passage.section)]
        question_terms = list(dict.fromkeys(tokenize(question)))
        source_terms = {term for passage in passages for term in tokenize(passage.text)}
        coverage = (sum(term in source_terms for term in question_terms) / len(question_terms)
                    if question_terms else 0.0)
        relevance, similarity, vectors = self._relevance(question, question_terms, units)
        own = relevance  # what a unit says, before the prior: whether it is close enough to the best one
        if config.passage_weight:
            # The retrieval's own ranking of the passages, as a prior: fused scores, the best passage 1.
            top = max(passage.score for passage in passages) or 1.0
            prior = {passage.number: passage.score / top for passage in passages}
            relevance = relevance + config.passage_weight * np.array([prior[unit.passage] for unit in units])
        prose = [i for i, unit in enumerate(units) if not unit.is_code]
        best_similarity = float(similarity[prose].max()) if prose else 0.0
        signals = {"best_similarity": round(best_similarity, 4), "coverage": round(coverage, 4),
                   "best_relevance": round(float(relevance[prose].max()), 4) if prose else 0.0}
        reason = self._unanswered(bool(prose), coverage, best_similarity)
        if reason:
            pages = closest_pages(passages, config.closest_pages)
            return ExtractiveAnswer(not_found_text(pages), found=False, closest=pages, signals=signals,
                                    reason=reason)
        chosen = self._pick(units, prose, relevance, own, similarity, vectors)
        chosen += self._code_for(question, units, chosen, relevance, float(relevance[prose].max()))
        return ExtractiveAnswer(self._render(units, chosen, relevance), found=True, units=chosen,
                                signals=signals)

    def _unanswered(self, has_prose: bool, coverage: float, best_similarity: float) -> str:
        """Why the sources do not answer the question ("" when they may)."""
        config = self.config
        if not has_prose:
            return "the retrieved passages hold no sentence, only code or headings"
        if coverage < config.min_coverage:
            return (f"the sources hold few of the question's terms (coverage {coverage:.2f}, "
                    f"below {config.min_coverage:g})")
        if self._cache is not None and best_similarity < config.min_similarity:
            return (f"no retrieved sentence is close to the question (best similarity {best_similarity:.2f}, "
                    f"below {config.min_similarity:g})")
        return ""

    def _relevance(self, question: str, question_terms: list[str],
                   units: list[Unit]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        texts = [unit.text[:_EMBED_CHARS] if unit.is_code else _plain(unit.text) for unit in units]
        lexical = _term_match(question_terms, [Counter(tokenize(text)) for text in texts])
        if self._cache is None or not units:
            return lexical, np.zeros(len(units)), None
        headings = list(dict.fromkeys(_heading(unit.section) for unit in units))
        matrix = self._cache.vectors([question, *texts, *headings])
        vectors = matrix[1:len(texts) + 1]
        similarity = vectors @ matrix[0]
        # A heading that restates the question (a FAQ entry "Does evorag need a GPU?", a "How do I ...?" section)
        # makes the text under it its answer, though "No. The default models run on the CPU." alone is far from it.
        heading_similarity = dict(zip(headings, (matrix[len(texts) + 1:] @ matrix[0]).tolist(), strict=True))
        for i, unit in enumerate(units):
            close = heading_similarity[_heading(unit.section)]
            if close >= self.config.min_heading_similarity:
                similarity[i] = max(float(similarity[i]), close)
        weight = self.config.semantic_weight
        return weight * similarity + (1 - weight) * lexical, similarity, vectors

    def _pick(self, units: list[Unit], prose: list[int], relevance: np.ndarray, own: np.ndarray,
              similarity: np.ndarray, vectors: np.ndarray | None) -> list[Unit]:
        """Maximal marginal relevance within the budget, among units close enough to the best one by what they
        say (``own``: the passage prior lifts every sentence of the top passage alike, so it does not decide
        which are close enough; it only orders them)."""
        config = self.config
        best = float(own[prose].max())
        lead = max(prose, key=lambda i: relevance[i])
        candidates = sorted((i for i in prose if i == lead or (own[i] >= config.min_relative * best
                                                               and similarity[i] >= config.min_unit_similarity)),
                            key=lambda i: -relevance[i])
        picked: list[int] = []
        seen_texts: set[str] = set()
        used = 0
        while candidates and len(picked) < config.max_units:
            def marginal(i: int) -> float:
                if vectors is None or not picked:
                    return float(relevance[i])
                redundancy = float(max(vectors[i] @ vectors[j] for j in picked))
                return config.mmr_lambda * float(relevance[i]) - (1 - config.mmr_lambda) * redundancy

            choice = max(candidates, key=marginal)
            candidates.remove(choice)
            unit = units[choice]
            key = _plain(unit.text).lower()
            if key in seen_texts:
                continue  # overlapping chunks repeat sentences
            if vectors is not None and picked and max(
                    float(vectors[choice] @ vectors[j]) for j in picked) >= config.max_redundancy:
                continue  # the same sentence in other words or markup (a page quoted by another, a FAQ)
            if picked and used + len(unit.text) > config.prose_chars:
                continue  # a shorter one may still fit
            picked.append(choice)
            seen_texts.add(key)
            used += len(unit.text)
        return [units[i] for i in picked]

    def _code_for(self, question: str, units: list[Unit], chosen: list[Unit], relevance: np.ndarray,
                  best: float) -> list[Unit]:
        """Whole code blocks, with the sentence introducing them when it was not picked: the block right after a
        picked sentence that introduces it (ends in ":"), or ends the picked sentence's paragraph that way; one
        next to a picked sentence and relevant on its own; one holding an identifier the question names. Never
        a block the context budget cut, never past the code budget."""
        config = self.config
        place = {(unit.passage, unit.index): position for position, unit in enumerate(units)}
        floor = config.min_code_relative * best  # a block this relevant answers on its own
        wanted: list[tuple[int, Unit | None]] = []  # (code block, the sentence to show with it)
        for unit in chosen:
            last = max((other for other in units if other.passage == unit.passage and other.block == unit.block),
                       key=lambda other: other.index)
            block = place.get((unit.passage, last.index + 1))
            if last is not unit and last.before_code and last.text.rstrip().endswith(":") and (
                    relevance[block] >= floor):
                wanted.append((block, last))
            after = place.get((unit.passage, unit.index + 1))
            before = place.get((unit.passage, unit.index - 1))
            if after is not None and units[after].is_code and (
                    unit.text.rstrip().endswith(":") or relevance[after] >= floor):
                wanted.append((after, None))
            if before is not None and units[before].is_code and _REFERS_BACK.search(unit.text) and (
                    relevance[before] >= floor):
                wanted.append((before, None))
        names = question_identifiers(question)
        if names:
            for position, unit in enumerate(units):
                if unit.is_code and {match.lower() for match in _IDENTIFIER.findall(unit.text)} & names:
                    wanted.append((position, None))
                    break
        added: list[Unit] = []
        used = 0
        blocks = 0
        for position, introducer in wanted:
            unit = units[position]
            if unit in added or blocks >= config.max_code_blocks or not unit.closed or not unit.text.strip():
                continue
            if used + len(unit.text) > config.code_chars:
                continue
            added.append(unit)
            blocks += 1
            used += len(unit.text)
            if introducer is not None and introducer not in chosen and introducer not in added:
                added.append(introducer)
        return added

    @staticmethod
    def _render(units: list[Unit], chosen: list[Unit], relevance: np.ndarray) -> str:
        """Passages in the order of their best unit (the best unit's passage first), units in page order, one
        paragraph per paragraph of the page, each cited; code fenced, whole."""
        score = {(unit.passage, unit.index): float(relevance[i]) for i, unit in enumerate(units)
                 if not unit.is_code}
        best_of: dict[int, float] = {}
        for unit in chosen:
            best_of[unit.passage] = max(best_of.get(unit.passage, -1.0), score.get((unit.passage, unit.index), -1.0))
        ordered = sorted(chosen, key=lambda unit: (-best_of[unit.passage], unit.passage, unit.index))
        shown = {(unit.passage, unit.index) for unit in chosen}
        paragraphs: list[str] = []
        line: list[str] = []

        def flush() -> None:
            if line:
                paragraphs.append(" ".join(line))
                line.clear()

        previous: Unit | None = None
        for unit in ordered:
            if previous is not None and (previous.passage != unit.passage or previous.block != unit.block):
                flush()
            if unit.is_code:
                flush()
                paragraphs.append(f"```{unit.language}\n{unit.text}\n```")
            elif unit.kind in ("item", "row"):
                flush()
                paragraphs.append(f"- {_cite(unit.text, unit.passage)}")
            elif unit.kind == "term":
                term, _, definition = unit.text.partition(": ")
                term = term if term.startswith("`") else f"`{term}`"
                line.append(f"{term}: {_cite(definition, unit.passage)}")
            else:
                text = unit.text.rstrip()
                if text.endswith(":") and (unit.passage, unit.index + 1) not in shown:
                    text = text[:-1].rstrip() + "."  # its code block is not shown: do not point at nothing
                line.append(_cite(text, unit.passage))
            previous = unit
        flush()
        return "\n\n".join(paragraphs)


def _cite(text: str, number: int) -> str:
    """``text`` with its citation, before a final colon ("...like this [2]:")."""
    text = text.rstrip()
    if text.endswith(":"):
        return f"{text[:-1].rstrip()} [{number}]:"
    return f"{text} [{number}]"


def extractive_answer(question: str, passages: Sequence[Passage], *, embed: EmbedFn | None = None) -> str:
    """The text of the extractive answer (see ExtractiveAnswerer; term match alone without ``embed``)."""
    return ExtractiveAnswerer(embed).answer(question, passages).text
