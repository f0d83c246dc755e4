"""nDCG of the retrieved contexts of one answer, with or without relevance labels.

With labels (``{url or chunk id: grade}``, e.g. from a golden set): each context is looked up by chunk id
(or the ids of the chunks a passage was merged from), then by URL (fragment and trailing slash ignored);
repeats of a document count once; the score is
:func:`~tools.evaluation.ndcg_at_k` at ``k`` with the ideal built from all labelled documents.

Without labels, each context gets a grade from what the answer itself shows:

* *similar*: the context is about the query -- its best sentence has cosine >= ``similarity_threshold``
  with the query (with an embedder), or it contains >= ``lexical_threshold`` of the query's content-word
  stems (without one);
* *used*: the answer cites it with [n], or it is the evidence of a supported claim;
* grade = similar + used (0, 1 or 2).

The score is the DCG of the grades in retrieval order divided by the DCG of the same grades sorted best
first (linear gain, log2(rank + 1) discount): 1.0 means the retriever ranked the useful contexts first.
It says nothing about documents that were never retrieved; only labels can. 0.0 when every grade is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evorag.tools.evaluation._retrieval import dcg, ndcg_at_k


def normalize_url(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/")


def labelled_ndcg(
    ids: Sequence[Sequence[str]], urls: Sequence[str | None], labels: Mapping[str, float], k: int
) -> float:
    """nDCG@k of retrieved items labelled by chunk id or URL.

    ``ids[i]`` holds the chunk ids of item i (several for a passage merged from neighbouring chunks: the
    best-graded labelled one not yet credited stands for it); without a labelled id the item's URL is used.
    """
    normalized = {normalize_url(key) if "://" in key else key: grade for key, grade in labels.items()}
    credited: set[str] = set()
    ranked: list[str] = []
    for chunk_ids, url in zip(ids, urls, strict=True):
        labelled = [i for i in chunk_ids if i in normalized and i not in credited]
        if labelled:
            key = max(labelled, key=lambda i: normalized[i])
        elif url is not None:
            key = normalize_url(url)
        else:
            key = f"\x00unlabelled-{len(ranked)}"
        credited.add(key)
        ranked.append(key)
    return ndcg_at_k(ranked, normalized, k)


def graded_ndcg(grades: Sequence[float]) -> float:
    ideal = dcg(sorted(grades, reverse=True))
    return dcg(grades) / ideal if ideal > 0 else 0.0
