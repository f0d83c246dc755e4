"""Evaluation data sets: BEIR folders and golden-set JSON Lines files.

Every loader reads the whole file and raises :class:`~evorag.errors.UserError` (or its subclass
``NotFoundError`` for a missing file) naming the file and the 1-based line of the first problem, so a
broken data set never turns into a silently lower score.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evorag.errors import NotFoundError, UserError

Grade = int | float


@dataclass(slots=True)
class BeirDataset:
    """One split of a BEIR data set.

    ``corpus`` maps document id to ``{"title": str, "text": str}``; ``queries`` holds only the queries
    judged in this split (as BEIR's own loader does); ``qrels`` maps query id to ``{doc id: grade}``.
    """

    name: str
    split: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(slots=True)
class GoldenItem:
    """One hand-labelled question: relevant URLs (or chunk ids) with grades, and an optional answer."""

    query: str
    relevant: dict[str, Grade] = field(default_factory=dict)
    answer: str | None = None
    line: int = 0


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line is a UserError naming it."""
    if not path.is_file():
        raise NotFoundError(f"missing file {path}", hint="check the data set folder")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{number}: not valid JSON ({exc.msg})", hint="fix or remove that line"
                ) from None
            if not isinstance(value, dict):
                raise UserError(f"{path}:{number}: expected a JSON object", hint="one object per line")
            yield number, value


def _required_str(obj: dict, key: str, path: Path, number: int, *, allow_empty: bool = False) -> str:
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "_id":
        value = str(value)  # some BEIR exports write numeric ids
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise UserError(f"{path}:{number}: field '{key}' must be a non-empty string", hint="fix that line")
    return value


def _load_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise NotFoundError(f"missing qrels file {path}", hint="a BEIR folder has qrels/<split>.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue  # the header
            if len(row) != 3:
                raise UserError(
                    f"{path}:{number}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}",
                    hint="fix that line",
                )
            query_id, doc_id, score = (cell.strip() for cell in row)
            try:
                grade = int(score)
            except ValueError:
                raise UserError(
                    f"{path}:{number}: score {score!r} is not an integer", hint="fix that line"
                ) from None
            qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise UserError(f"{path} holds no judgments", hint="check the qrels file")
    return qrels


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a BEIR folder.

    Raises NotFoundError for a missing folder or file, UserError for a malformed line (file and line
    named) or for qrels naming a query that ``queries.jsonl`` lacks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(
            f"no BEIR data set folder at {folder}", hint="pass the folder holding corpus.jsonl"
        )
    qrels = _load_qrels(folder / "qrels" / f"{split}.tsv")

    corpus: dict[str, dict[str, str]] = {}
    corpus_path = folder / "corpus.jsonl"
    for number, obj in _json_lines(corpus_path):
        doc_id = _required_str(obj, "_id", corpus_path, number)
        text = _required_str(obj, "text", corpus_path, number, allow_empty=True)
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise UserError(f"{corpus_path}:{number}: field 'title' must be a string", hint="fix that line")
        corpus[doc_id] = {"title": title, "text": text}

    queries: dict[str, str] = {}
    queries_path = folder / "queries.jsonl"
    for number, obj in _json_lines(queries_path):
        query_id = _required_str(obj, "_id", queries_path, number)
        if query_id in qrels:
            queries[query_id] = _required_str(obj, "text", queries_path, number)

    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise UserError(
            f"{len(missing)} judged queries are missing from {queries_path} (first: {missing[0]!r})",
            hint=f"the qrels/{split}.tsv and queries.jsonl do not belong together",
        )
    return BeirDataset(name=folder.name, split=split, corpus=corpus, queries=queries, qrels=qrels)


def load_golden(path: Path) -> list[GoldenItem]:
    """Read a golden set: one ``{"query": str, "relevant": {url: grade}, "answer": str?}`` per line.

    Raises NotFoundError for a missing file and UserError naming the line for anything malformed: bad
    JSON, a missing or empty query, ``relevant`` not an object of numeric grades, a non-string answer.
    """
    path = Path(path)
    items: list[GoldenItem] = []
    for number, obj in _json_lines(path):
        query = _required_str(obj, "query", path, number)
        relevant = obj.get("relevant", {})
        if not isinstance(relevant, dict) or not all(
            isinstance(key, str) and isinstance(grade, (int, float)) and not isinstance(grade, bool)
            for key, grade in relevant.items()
        ):
            raise UserError(
                f"{path}:{number}: 'relevant' must be an object mapping URLs to numeric grades",
                hint='e.g. "relevant": {"https://docs.example.com/page": 2}',
            )
        answer = obj.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise UserError(f"{path}:{number}: 'answer' must be a string when given", hint="fix that line")
        items.append(GoldenItem(query=query, relevant=dict(relevant), answer=answer, line=number))
    if not items:
        raise UserError(f"{path} holds no questions", hint="add one JSON object per line")
    return items
