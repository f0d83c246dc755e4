"""The answer given when no language model answers: the most relevant sentences, cited."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evorag.tools.answering._context import Passage
from evorag.tools.sparse import tokenize

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")
_FENCE = re.compile(r"```.*?```", re.DOTALL)


def _sentences(text: str) -> list[str]:
    prose = _FENCE.sub(" ", text)
    out = []
    for line in prose.splitlines():
        line = line.strip().lstrip("#").strip()
        if len(line) < 25:
            continue  # headings and fragments
        out.extend(s.strip() for s in _SENTENCE.split(line) if len(s.strip()) >= 25)
    return out


def extractive_answer(question: str, passages: Sequence[Passage], *, max_sentences: int = 3) -> str:
    """Pick the sentences sharing the most query terms (earlier passages win ties), each cited."""
    if not passages:
        return "The indexed documentation has nothing on this question."
    terms = set(tokenize(question))
    scored = []
    for rank, passage in enumerate(passages):
        for position, sentence in enumerate(_sentences(passage.text)):
            overlap = len(terms & set(tokenize(sentence)))
            scored.append((overlap, -rank, -position, sentence, passage.number))
    scored.sort(reverse=True)
    best = scored[0][0] if scored else 0
    # Sentences sharing only a word or two with a question that others match well are noise.
    chosen = [item for item in scored if item[0] > 0 and item[0] * 2 >= best][:max_sentences] or scored[:1]
    if not chosen:
        first = passages[0]
        return f"See {first.title} — {first.section} [{first.number}]."
    # Present in source order, which reads better than score order.
    chosen.sort(key=lambda item: (-item[1], -item[2]))
    return " ".join(f"{sentence} [{number}]" for _, _, _, sentence, number in chosen)
