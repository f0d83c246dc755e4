"""The anomaly detector (evorag.tools.anomaly) on synthetic streams with fixed seeds: quiet on steady noise,
quick on a level shift, unmoved by one outlier, and the same after a round trip through JSON."""

from __future__ import annotations

import json
import random

import pytest
from evorag.tools.anomaly import DetectorParams, StreamState

SEEDS = range(20)


def noise(seed: int, steps: int, *, level: float = 10.0, sd: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sd) for _ in range(steps)]


def alarms(values: list[float], params: DetectorParams | None = None) -> list[tuple[int, str, str]]:
    state = StreamState(params or DetectorParams(warmup=96))
    season = state.params.season or 1
    found = []
    for step, value in enumerate(values):
        detection = state.update(value, step % season)
        if detection is not None:
            found.append((step, detection.kind, detection.direction))
    return found


def test_steady_noisy_series_raises_almost_no_alarm() -> None:
    # 20 series x 1000 steps of Gaussian noise: a false alarm is rare (the benchmark measures the rate).
    total = sum(len(alarms(noise(seed, 1000))) for seed in SEEDS)
    assert total <= 4, total
    # No alarm during the warm-up, whatever the values.
    assert alarms([0.0, 1000.0] * 48) == []


@pytest.mark.parametrize("size", [3.0, -3.0])
def test_planted_level_shift_is_detected_within_a_few_points(size: float) -> None:
    delays = []
    for seed in SEEDS:
        values = noise(seed, 600)
        values[400:] = [v + size for v in values[400:]]
        after = [(step, kind, direction) for step, kind, direction in alarms(values) if step >= 400]
        assert after, f"seed {seed}: the shift was missed"
        step, kind, direction = after[0]
        assert direction == ("up" if size > 0 else "down")
        assert kind in ("shift", "spike")
        delays.append(step - 400)
    assert max(delays) <= 15, delays
    assert sorted(delays)[len(delays) // 2] <= 6, delays


def test_a_shift_is_reported_once_and_becomes_the_new_normal() -> None:
    values = noise(3, 1200)
    values[400:] = [v + 5 for v in values[400:]]
    found = alarms(values)
    assert [a for a in found if a[0] >= 400][:1] and len([a for a in found if a[0] >= 400]) == 1, found


def test_one_outlier_neither_alarms_nor_moves_the_baseline() -> None:
    for seed in SEEDS:
        values = noise(seed, 500)
        state = StreamState(DetectorParams(warmup=96))
        for value in values[:300]:
            state.update(value)
        level, scale = state.level, state.scale
        # A wild value: 40 noise units (a timeout among fast answers). One spike point is not an anomaly.
        detection = state.update(50.0)
        assert detection is None or detection.kind != "spike"
        assert abs(state.level - level) < 0.05
        assert abs(state.scale - scale) < 0.1 * scale
    # Over all seeds, the outlier causes (almost) no alarm of any kind.
    total = 0
    for seed in SEEDS:
        values = noise(seed, 500)
        values[300] = 50.0
        total += sum(1 for step, _, _ in alarms(values) if 300 <= step < 320)
    assert total <= 2, total


def test_two_outliers_in_a_row_are_a_spike() -> None:
    values = noise(1, 400)
    values[300:302] = [50.0, 50.0]
    assert (301, "spike", "up") in alarms(values)


def test_direction_limits_what_alarms() -> None:
    values = noise(5, 600)
    values[400:] = [v + 4 for v in values[400:]]
    assert [a for a in alarms(values, DetectorParams(warmup=96, direction="down")) if a[0] >= 400] == []
    assert [a for a in alarms(values, DetectorParams(warmup=96, direction="up")) if a[0] >= 400]


def test_state_survives_a_json_round_trip() -> None:
    values = noise(7, 600)
    values[450:] = [v - 4 for v in values[450:]]
    whole = alarms(values)
    state, split = StreamState(DetectorParams(warmup=96)), []
    for step, value in enumerate(values):
        state = StreamState.from_dict(json.loads(json.dumps(state.to_dict())))  # a new process every step
        detection = state.update(value)
        if detection is not None:
            split.append((step, detection.kind, detection.direction))
    assert split == whole and any(step >= 450 for step, _, _ in whole)


def test_seasonal_stream_is_learnt_and_a_shift_still_found() -> None:
    import math

    rng = random.Random(11)
    season = 24
    values = [10 + 3 * math.sin(2 * math.pi * i / season) + rng.gauss(0, 0.5) for i in range(24 * 20)]
    params = DetectorParams(season=season, warmup=48)
    # The daily swing (6 units peak to peak, 12 noise units) is learnt, not alarmed on.
    assert len(alarms(values, params)) <= 1
    values[24 * 15:] = [v + 2 for v in values[24 * 15:]]
    assert any(24 * 15 <= step < 24 * 16 for step, _, _ in alarms(values, params))


def test_bad_parameters_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="direction"):
        DetectorParams(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="season"):
        DetectorParams(season=1)


def test_missing_values_are_skipped() -> None:
    state = StreamState(DetectorParams(warmup=8))
    for value in [1.0, float("nan"), 1.1, float("inf"), 0.9] * 4:
        state.update(value)
    assert state.steps == 12 and state.ready


def test_service_and_cli_report_a_quality_drop_in_the_answer_history(evorag_home, capsys) -> None:
    from evorag.tools.metrics_store import MetricsStore

    from evorag.cli import main
    from evorag.principals import Principal, Role
    from evorag.service import Evorag

    store = MetricsStore(evorag_home / "metrics.sqlite3")
    rng = random.Random(4)
    for i in range(160):
        quality = 0.8 + rng.gauss(0, 0.03) - (0.25 if i >= 120 else 0.0)
        store.record({"overall": quality, "grounding": 0.9 + rng.gauss(0, 0.02)}, query=f"question {i}",
                     timings={"retrieve": 40 + rng.gauss(0, 3), "generate": 200 + rng.gauss(0, 10)},
                     created_at=1_700_000_000 + 60 * i)
    with Evorag(home=evorag_home) as rag:
        report = rag.anomalies()
        assert report.records == 160 and report.values["answer_quality"] == 160
        assert report.values["retrieval_ndcg"] == 0  # no such metric recorded: nothing learnt, nothing raised
        quality = [a for a in report.alerts if a.metric == "answer_quality"]
        assert quality and quality[0].direction == "down" and 120 <= quality[0].record_id - 1 < 128
        assert quality[0].query.startswith("question 12")
        # Grounding and latency stayed steady: nothing about them past the warm-up but the odd false alarm.
        assert len([a for a in report.alerts if a.metric != "answer_quality"]) <= 1
        with pytest.raises(Exception, match="last must be"):
            rag.anomalies(last=0)
        nobody = Principal("guest", Role.READER, via="python")
        assert rag.anomalies(principal=nobody).records == 160  # readers may look

    assert main(["anomalies", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["metric"] for a in data["alerts"]].count("answer_quality") >= 1
    assert main(["anomalies"]) == 0
    assert "still learning (fewer than 48 values): retrieval_ndcg" in capsys.readouterr().out
