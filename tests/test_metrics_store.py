"""The SQLite metrics store: round trip, ordering, trend, concurrency and crash safety (real files)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from evorag.tools.evaluation import evaluate_answer
from evorag.tools.metrics_store import LATEST_VERSION, MetricsStore, default_metrics_path

from evorag.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CONTEXT = [
    {
        "id": "c1",
        "url": "https://docs.example.com/t",
        "text": "Requests do not time out by default. Set a timeout in seconds.",
    }
]


def test_round_trip_of_a_correctness_report(tmp_path: Path) -> None:
    store = MetricsStore(default_metrics_path(tmp_path))
    report = evaluate_answer("timeouts?", "Requests do not time out by default [1].", CONTEXT)
    record_id = store.record(
        report,
        query="timeouts?",
        source_filter="requests",
        model="smollm2",
        timings={"search": 12.5, "generate": 80.0},
        tokens={"prompt": 512, "completion": 64},
    )
    [row] = store.history()
    assert row["id"] == record_id and row["kind"] == "answer"
    assert (row["query"], row["source_filter"], row["model"]) == ("timeouts?", "requests", "smollm2")
    for name, value in report.metrics().items():
        assert row[name] == pytest.approx(value) if value is not None else row[name] is None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (512, 64)
    assert row["timings"]["search"] == 12.5 and row["timings"]["evaluation"]["total"] > 0
    assert row["report"]["claims"][0]["status"] == "supported"
    assert row["created_at"] == pytest.approx(time.time(), abs=60)


def test_eval_run_dict_is_stored_with_ndcg_at_10(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    store.record(
        {"ndcg@10": 0.66, "recall@100": 0.9, "queries": 300.0}, query="scifact", kind="eval", model="minilm"
    )
    [row] = store.history(kind="eval")
    assert row["ndcg"] == pytest.approx(0.66) and row["overall"] is None
    assert row["report"]["recall@100"] == 0.9
    assert store.history(kind="answer") == []


def test_history_is_oldest_first_and_last_keeps_the_newest(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    ids = [store.record({"overall": i / 10}, query=f"q{i}") for i in range(6)]
    assert [r["id"] for r in store.history()] == ids
    assert [r["query"] for r in store.history(last=2)] == ["q4", "q5"]
    assert store.history(last=0) == []
    with pytest.raises(UserError):
        store.history(last=-1)


def test_trend_over_the_stored_sequence(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    for value in (0.9, 0.1, 0.2, 0.3, 0.4, 0.5):
        store.record({"overall": value, "grounding": 1.0 - value}, query="q")
    store.record({"grounding": 0.0}, query="no overall")  # skipped by the overall trend
    trend = store.trend(window=5)
    assert trend.window == 5 and trend.direction == "improving"
    assert trend.slope == pytest.approx(0.1)
    assert store.trend(window=5, metric="grounding").direction == "declining"
    with pytest.raises(UserError, match="unknown metric"):
        store.trend(metric="overall; DROP TABLE reports")


def test_non_finite_metrics_are_stored_as_null(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    store.record({"overall": float("nan"), "ndcg": "n/a"}, query="q")
    [row] = store.history()
    assert row["overall"] is None and row["ndcg"] is None


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(25):
                store.record({"overall": i / 25}, query=f"w{worker}-{i}")
        except Exception as exc:  # noqa: BLE001 -- surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = store.history()
    assert len(rows) == 200 == store.count()
    assert len({r["id"] for r in rows}) == 200
    assert {r["query"] for r in rows} == {f"w{w}-{i}" for w in range(8) for i in range(25)}


_WRITER = """
import sys
from evorag.tools.metrics_store import MetricsStore
store = MetricsStore(sys.argv[1])
i = 0
while True:
    store.record({"overall": 0.5, "big": "x" * 20000}, query=f"{sys.argv[2]}-{i}")
    i += 1
"""


def _spawn_writer(path: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name], cwd=REPO, env=env)


def test_killed_writers_never_corrupt_the_database(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = MetricsStore(path)
    writers = [_spawn_writer(path, "a"), _spawn_writer(path, "b")]
    try:
        deadline = time.monotonic() + 60
        # Both writers must have written (a loaded machine may start one much later than the other).
        while time.monotonic() < deadline:
            if store.count() >= 40 and {r["query"].split("-")[0] for r in store.history()} == {"a", "b"}:
                break
            time.sleep(0.05)
    finally:
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    assert store.count() >= 40
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()
    rows = store.history()
    assert all(len(row["report"]["big"]) == 20000 for row in rows)  # no half-written record
    names = {row["query"].split("-")[0] for row in rows}
    assert names == {"a", "b"}
    store.record({"overall": 1.0}, query="after the crash")
    assert store.history(last=1)[0]["query"] == "after the crash"


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    MetricsStore(path).record({"overall": 0.5}, query="q")
    reopened = MetricsStore(path)
    assert reopened.schema_version() == LATEST_VERSION
    assert reopened.count() == 1
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_database_from_a_newer_evorag_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    MetricsStore(path)
    connection = sqlite3.connect(path)
    connection.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST_VERSION + 1,))
    connection.commit()
    connection.close()
    with pytest.raises(UserError, match="newer than this evorag"):
        MetricsStore(path)


def test_garbage_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="m.sqlite3"):
        MetricsStore(path)


def test_report_json_is_plain_json(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    store.record({"overall": 0.5, "nested": {"a": [1, 2]}}, query="q")
    connection = sqlite3.connect(tmp_path / "m.sqlite3")
    raw = connection.execute("SELECT report FROM reports").fetchone()[0]
    connection.close()
    assert json.loads(raw)["nested"] == {"a": [1, 2]}
