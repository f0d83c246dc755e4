"""Anomalies in the answer history: the metrics store's answer records, read as metric streams (one step per
answer, in the order they were recorded) and each watched by the robust detector of evorag.tools.anomaly.

A step per answer rather than per time bucket: the history holds one record per answer, and a quiet night is no
evidence about quality. The scan is recomputed from the records each time (no detector state is stored), so it
is the same whichever process runs it; its cost is linear in the records read.

Each stream obeys a direction: a quality score alarms only downwards, a latency only upwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from evorag.tools.anomaly import DetectorParams, StreamState

_NOT_LATENCY = frozenset({"evaluate", "evaluation", "total"})


def _column(name: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(record: Mapping[str, Any]) -> float | None:
        value = record.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return read


def answer_latency_ms(record: Mapping[str, Any]) -> float | None:
    """The time the answer took to produce (retrieval, context, generation), without the time spent scoring it
    afterwards: the record is written before the total is known."""
    timings = record.get("timings") or {}
    if isinstance(timings.get("total"), int | float):
        return float(timings["total"])
    parts = [v for k, v in timings.items() if k not in _NOT_LATENCY and isinstance(v, int | float)]
    return float(sum(parts)) if parts else None


@dataclass(frozen=True, slots=True)
class MetricStream:
    name: str
    read: Callable[[Mapping[str, Any]], float | None]
    direction: str  # "up" or "down": which way is bad


STREAMS: tuple[MetricStream, ...] = (
    MetricStream("answer_quality", _column("overall"), "down"),
    MetricStream("grounding", _column("grounding"), "down"),
    MetricStream("retrieval_ndcg", _column("ndcg"), "down"),
    MetricStream("latency_ms", answer_latency_ms, "up"),
)


@dataclass(slots=True)
class Alert:
    """An anomaly's first record: which stream, what kind (spike, shift, drift), which way, the value against
    the expected value, and the answer record that showed it."""

    metric: str
    kind: str
    direction: str
    value: float
    expected: float
    z: float
    record_id: int | None
    created_at: float | None
    query: str

    def to_dict(self) -> dict:
        return asdict(self)


def scan(records: Iterable[Mapping[str, Any]], *, warmup: int = 48,
         streams: tuple[MetricStream, ...] = STREAMS) -> tuple[list[Alert], dict[str, int]]:
    """Alerts over ``records`` (oldest first) and, per stream, how many values it had. A stream with fewer
    than ``warmup`` values is still learning and raises nothing."""
    states = {s.name: StreamState(DetectorParams(direction=s.direction, warmup=warmup)) for s in streams}
    seen = dict.fromkeys(states, 0)
    alerts: list[Alert] = []
    for record in records:
        for stream in streams:
            value = stream.read(record)
            if value is None:
                continue
            seen[stream.name] += 1
            detection = states[stream.name].update(value)
            if detection is not None:
                alerts.append(Alert(stream.name, detection.kind, detection.direction, round(detection.value, 4),
                                    round(detection.expected, 4), detection.z, record.get("id"),
                                    record.get("created_at"), str(record.get("query") or "")[:200]))
    return alerts, seen
