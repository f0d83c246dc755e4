"""Context assembly: hits become numbered passages, neighbouring chunks merged, within a token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from evorag.tools.types import Chunk, Hit


def approx_tokens(text: str) -> int:
    # ~4 characters per token for English prose and code with MiniLM/SmolLM-style tokenizers.
    return max(1, len(text) // 4)


@dataclass(slots=True)
class Passage:
    """One numbered source given to the model: ``[number]`` in the answer refers to it."""

    number: int
    url: str
    title: str
    section: str
    text: str
    score: float
    chunk_ids: list[str] = field(default_factory=list)
    source: str = ""
    version: str | None = None  # the documentation version of its source (None: unversioned)

    def citation(self) -> dict:
        return {"number": self.number, "url": self.url, "title": self.title, "section": self.section,
                "source": self.source, "version": self.version}

    def to_dict(self) -> dict:
        return {**self.citation(), "content": self.text, "score": round(self.score, 6), "chunk_ids": self.chunk_ids}


def _next_to(before: Chunk, after: Chunk, chunks_between: Callable[[Chunk, Chunk], int]) -> bool:
    if after.position <= before.position:
        return False
    return after.position == before.position + 1 or chunks_between(before, after) == 0


def assemble_context(
    hits: Sequence[Hit],
    chunks_between: Callable[[Chunk, Chunk], int],
    *,
    token_budget: int = 1500,
    max_passages: int = 6,
) -> list[Passage]:
    """Turn ranked hits into passages.

    Hits that sit next to each other on the same page are merged into one passage (in page order), so
    a section cut in two reads as one. ``chunks_between(a, b)`` counts the chunks of a's page and kind
    strictly between the positions of ``a`` and ``b`` (a store count: cheaper than reading the page).
    Passages keep the rank of their best hit. Passages are added until the budget is spent; the last
    one is truncated rather than dropped when at least a quarter of the budget is left.
    """
    # Positions compare only within one version of a page and one kind of chunk.
    runs_of: dict[tuple[str, str, str], list[tuple[float, Chunk]]] = {}
    for hit in hits:
        runs_of.setdefault((hit.chunk.url, hit.chunk.kind, hit.chunk.content_hash), []).append((hit.score, hit.chunk))

    groups: list[tuple[float, list[Chunk]]] = []
    for scored in runs_of.values():
        scored.sort(key=lambda item: item[1].position)
        run: list[tuple[float, Chunk]] = []
        for score, chunk in scored:
            if run and chunk.id == run[-1][1].id:
                run[-1] = (max(score, run[-1][0]), chunk)  # the same chunk twice: keep its best score
                continue
            if run and not _next_to(run[-1][1], chunk, chunks_between):
                groups.append((max(s for s, _ in run), [c for _, c in run]))
                run = []
            run.append((score, chunk))
        if run:
            groups.append((max(s for s, _ in run), [c for _, c in run]))

    groups.sort(key=lambda group: -group[0])
    passages: list[Passage] = []
    budget = token_budget
    for score, chunks in groups[:max_passages]:
        text = "\n\n".join(chunk.text for chunk in chunks)
        cost = approx_tokens(text)
        if cost > budget:
            if budget < token_budget // 4:
                break
            text = text[: budget * 4].rsplit(" ", 1)[0] + " …"
            cost = budget
        first = chunks[0]
        passages.append(
            Passage(
                number=len(passages) + 1,
                url=first.url,
                title=first.title,
                section=first.section,
                text=text,
                score=score,
                chunk_ids=[chunk.id for chunk in chunks],
                source=first.source,
                version=first.version,
            )
        )
        budget -= cost
        if budget <= 0:
            break
    return passages
