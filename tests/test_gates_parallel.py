"""The code gate and the dependency gate run at once (``EvolutionPipeline.check_static``) and judge exactly as
when they ran one after the other: same verdicts, same order, same first failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from evorag.service import Evorag

CANDIDATES = Path(__file__).parent / "candidates"


@pytest.fixture
def pipeline(tmp_path):
    # No pip resolution against the package index: the verdicts compared here come from the local checks.
    with Evorag(home=tmp_path / "home", resolve_dependencies=False) as rag:
        yield rag.evolution


def _sequential(pipeline, path: Path) -> list:
    verdict, _ = pipeline.check_code(path)
    return [verdict] if not verdict.ok else [verdict, pipeline.check_dependencies(path)]


def _judged(verdicts) -> list:
    return [(v.gate, v.ok, v.reason, v.risk, v.details.get("risk_reasons")) for v in verdicts]


@pytest.mark.parametrize("candidate", ["good_word_count", "syntax_error", "typosquat", "dependency_conflict",
                                       "unknown_package", "uses_subprocess"])
def test_at_once_judges_like_one_after_the_other(pipeline, candidate):
    path = CANDIDATES / candidate
    verdicts, result = pipeline.check_static(path)
    assert _judged(verdicts) == _judged(_sequential(pipeline, path))
    if verdicts[0].ok:
        assert result.function.name == pipeline.check_code(path)[1].function.name


def test_with_requirements_the_two_gates_overlap(pipeline, monkeypatch):
    """Each gate made to take 0.4 s: at once they take about 0.4 s, not 0.8 s, and the dependency gate runs in a
    thread of its own."""
    code_check, dependency_check = pipeline.check_code, pipeline.check_dependencies
    threads = {}

    def slow_code(path):
        threads["code"] = threading.current_thread().name
        time.sleep(0.4)
        return code_check(path)

    def slow_dependencies(path, **kwargs):
        threads["dependencies"] = threading.current_thread().name
        time.sleep(0.4)
        return dependency_check(path, **kwargs)

    monkeypatch.setattr(pipeline, "check_code", slow_code)
    monkeypatch.setattr(pipeline, "check_dependencies", slow_dependencies)
    started = time.perf_counter()
    verdicts, _ = pipeline.check_static(CANDIDATES / "typosquat")
    elapsed = time.perf_counter() - started
    assert [v.gate for v in verdicts] == ["code", "dependencies"] and not verdicts[1].ok
    assert elapsed < 0.75, elapsed
    assert threads["dependencies"] != threads["code"]
