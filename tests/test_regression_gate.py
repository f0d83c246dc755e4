"""The regression gate passes on the baseline and fails on a deliberately degraded retrieval config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evorag.tools import regression_gate

from evorag.cli import main
from evorag.errors import NotFoundError, UserError

GOLDEN = Path(__file__).parents[1] / "evorag" / "golden" / "demo.jsonl"


def test_compare_flags_only_drops_beyond_the_tolerance():
    baseline = {"ndcg@10": 0.80, "recall@10": 0.90, "answer_overall": 0.70}
    ok = regression_gate.compare({"ndcg@10": 0.77, "recall@10": 0.95, "answer_overall": 0.70}, baseline)
    assert ok.passed and set(ok.compared) == set(baseline)
    bad = regression_gate.compare({"ndcg@10": 0.70, "recall@10": 0.90, "answer_overall": 0.70}, baseline)
    assert not bad.passed and [r.metric for r in bad.regressions] == ["ndcg@10"]
    assert bad.regressions[0].relative_change == pytest.approx(-0.125)
    with pytest.raises(UserError):
        regression_gate.compare({"other": 1.0}, baseline)
    with pytest.raises(UserError):
        regression_gate.compare(baseline, baseline, tolerance=1.5)


def test_baseline_files_round_trip_and_bad_ones_are_clear_errors(tmp_path):
    path = regression_gate.save_baseline(tmp_path / "b.json", {"ndcg@10": 0.5}, meta={"dataset": "x"})
    assert regression_gate.load_baseline(path) == {"ndcg@10": 0.5}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not a baseline"):
        regression_gate.load_baseline(tmp_path / "bad.json")
    with pytest.raises(NotFoundError):
        regression_gate.load_baseline(tmp_path / "missing.json")


def test_cli_gate_passes_on_baseline_and_fails_when_retrieval_is_degraded(demo_home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EVORAG_HOME", str(demo_home))
    baseline = tmp_path / "baseline.json"
    args = ["eval", str(GOLDEN), "--source", "evorag-demo", "--no-answers", "--json"]
    assert main([*args, "--save-baseline", str(baseline)]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["metrics"]["ndcg@10"] > 0.6 and saved["queries"] == 12

    assert main([*args, "--baseline", str(baseline)]) == 0
    assert json.loads(capsys.readouterr().out)["gate"]["passed"] is True

    # Degraded: keyword search off and a single dense candidate.
    monkeypatch.setenv("EVORAG_SPARSE_WEIGHT", "0")
    monkeypatch.setenv("EVORAG_CANDIDATES", "1")
    assert main([*args, "--baseline", str(baseline)]) == 1
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["passed"] is False and {r["metric"] for r in gate["regressions"]} & {"ndcg@10", "recall@10"}
