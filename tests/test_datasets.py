"""BEIR and golden-set loaders: real files written to a temporary folder, plus SciFact when shared/ has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evorag.tools.datasets import load_beir, load_golden
from evorag.tools.evaluation import evaluate_run

from evorag.errors import NotFoundError, UserError

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def write_beir(
    folder: Path,
    *,
    corpus: list[str] | None = None,
    queries: list[str] | None = None,
    qrels: str | None = None,
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = corpus or [
        json.dumps({"_id": "d1", "title": "Timeouts", "text": "Requests do not time out by default."}),
        json.dumps({"_id": "d2", "title": "", "text": "Sessions persist cookies."}),
        json.dumps({"_id": 3, "text": "A numeric id and no title."}),
    ]
    queries = queries or [
        json.dumps({"_id": "q1", "text": "default timeout"}),
        json.dumps({"_id": "q2", "text": "cookies"}),
        json.dumps({"_id": "q9", "text": "judged in another split"}),
    ]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\t3\t0\n",
        encoding="utf-8",
    )
    return folder


def test_load_beir_reads_corpus_queries_and_qrels(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path / "tiny"))
    assert data.name == "tiny" and data.split == "test"
    assert data.corpus["d1"] == {"title": "Timeouts", "text": "Requests do not time out by default."}
    assert data.corpus["3"]["title"] == ""
    assert data.queries == {"q1": "default timeout", "q2": "cookies"}  # only the judged queries
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "3": 0}}


def test_missing_folder_and_missing_file_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no BEIR data set folder"):
        load_beir(tmp_path / "absent")
    folder = write_beir(tmp_path / "tiny")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(NotFoundError, match="queries.jsonl"):
        load_beir(folder)
    with pytest.raises(NotFoundError, match="dev.tsv"):
        load_beir(folder, split="dev")


def test_malformed_corpus_line_names_file_and_line(tmp_path: Path) -> None:
    corpus = [json.dumps({"_id": "d1", "text": "ok"}), "{not json", json.dumps({"_id": "d3", "text": "ok"})]
    folder = write_beir(tmp_path / "tiny", corpus=corpus)
    with pytest.raises(UserError, match=r"corpus\.jsonl:2: not valid JSON"):
        load_beir(folder)


def test_corpus_line_without_text_is_rejected(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny", corpus=[json.dumps({"_id": "d1"})])
    with pytest.raises(UserError, match=r"corpus\.jsonl:1: field 'text'"):
        load_beir(folder)


def test_malformed_qrels_line_names_the_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2 d2 1\n")
    with pytest.raises(UserError, match=r"test\.tsv:3: expected 3 tab-separated columns"):
        load_beir(folder)
    folder = write_beir(tmp_path / "tiny2", qrels="q1\td1\thigh\n")
    with pytest.raises(UserError, match=r"test\.tsv:1: score 'high'"):
        load_beir(folder)


def test_qrels_naming_unknown_query_is_rejected(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny", qrels="q1\td1\t1\nq404\td1\t1\n")
    with pytest.raises(UserError, match="missing from .*queries.jsonl.*q404"):
        load_beir(folder)


def test_golden_set_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(
        json.dumps(
            {"query": "How do I set a timeout?", "relevant": {"https://docs/x": 2}, "answer": "Pass timeout="}
        )
        + "\n\n"
        + json.dumps({"query": "What is a session?"})
        + "\n",
        encoding="utf-8",
    )
    items = load_golden(path)
    assert [item.query for item in items] == ["How do I set a timeout?", "What is a session?"]
    assert items[0].relevant == {"https://docs/x": 2} and items[0].answer == "Pass timeout="
    assert items[1].relevant == {} and items[1].answer is None and items[1].line == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"relevant": {}}', "field 'query'"),
        ('{"query": "q", "relevant": ["a"]}', "'relevant' must be an object"),
        ('{"query": "q", "relevant": {"u": "high"}}', "'relevant' must be an object"),
        ('{"query": "q", "answer": 3}', "'answer' must be a string"),
        ('{"query": "q"', "not valid JSON"),
    ],
)
def test_golden_set_malformed_line_names_line_two(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps({"query": "fine"}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"golden\.jsonl:2: .*{message}"):
        load_golden(path)


def test_empty_or_missing_golden_set(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_golden(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="holds no questions"):
        load_golden(tmp_path / "empty.jsonl")


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="shared/data/scifact is not beside the repository")
def test_scifact_loads_and_its_own_qrels_score_perfectly() -> None:
    data = load_beir(SCIFACT)
    assert len(data.corpus) == 5183
    assert len(data.queries) == len(data.qrels) == 300
    assert all(doc_id in data.corpus for rels in data.qrels.values() for doc_id in rels)
    ideal_run = {qid: sorted(rels, key=lambda d: -rels[d]) for qid, rels in data.qrels.items()}
    assert evaluate_run(ideal_run, data.qrels)["ndcg@10"] == pytest.approx(1.0)
