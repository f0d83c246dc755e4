"""Context assembly: hits become numbered passages, neighbouring chunks merged, within a token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tools.types import Chunk, Hit


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

    def citation(self) -> dict:
        return {"number": self.number, "url": self.url, "title": self.title, "section": self.section,
                "source": self.source}

    def to_dict(self) -> dict:
        return {**self.citation(), "content": self.text, "score": round(self.score, 6), "chunk_ids": self.chunk_ids}


def assemble_context(
    hits: Sequence[Hit],
    page_chunks: Callable[[str], Sequence[Chunk]],
    *,
    token_budget: int = 1500,
    max_passages: int = 6,
) -> list[Passage]:
    """Turn ranked hits into passages.

    Hits that sit next to each other on the same page are merged into one passage (in page order), so
    a section cut in two reads as one. Passages keep the rank of their best hit. Passages are added
    until the budget is spent; the last one is truncated rather than dropped when at least a quarter
    of the budget is left.
    """
    groups: list[tuple[float, list[Chunk]]] = []
    by_url: dict[str, list[tuple[float, Chunk]]] = {}
    for hit in hits:
        by_url.setdefault(hit.chunk.url, []).append((hit.score, hit.chunk))

    for url, scored in by_url.items():
        order = {c.id: i for i, c in enumerate(c for c in page_chunks(url) if c.kind == scored[0][1].kind)}
        # Unknown ids (page re-indexed since the search) still count, as their own group.
        scored.sort(key=lambda item: order.get(item[1].id, 10**6 + item[1].position))
        run: list[tuple[float, Chunk]] = []
        for score, chunk in scored:
            if run and order.get(chunk.id, -5) - order.get(run[-1][1].id, -10) != 1:
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
            )
        )
        budget -= cost
        if budget <= 0:
            break
    return passages
