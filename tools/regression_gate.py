"""The regression gate: compare an evaluation against a saved baseline, fail on a real drop.

Used by ``evorag eval --baseline`` and by the Integration Tester before any evolution is deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.errors import NotFoundError, UserError

HEADLINE_METRICS = ("ndcg@10", "recall@10", "mrr@10", "answer_overall", "answer_grounding", "answer_rougeL")
DEFAULT_TOLERANCE = 0.05


@dataclass(slots=True)
class Regression:
    metric: str
    baseline: float
    current: float

    @property
    def relative_change(self) -> float:
        return (self.current - self.baseline) / self.baseline if self.baseline else 0.0


@dataclass(slots=True)
class GateResult:
    passed: bool
    tolerance: float
    compared: list[str] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["regressions"] = [
            {**asdict(r), "relative_change": round(r.relative_change, 4)} for r in self.regressions
        ]
        return data


def save_baseline(path: Path, metrics: Mapping[str, float], *, meta: Mapping | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"metrics": dict(metrics), "meta": dict(meta or {})}, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a crash never leaves half a baseline
    return path


def load_baseline(path: Path) -> dict[str, float]:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no baseline at {path}", hint="create one with --save-baseline FILE")
    try:
        data = json.loads(path.read_text())
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) for v in metrics.values()):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a baseline file", hint="it must be JSON with a 'metrics' object") from None
    return {key: float(value) for key, value in metrics.items()}


def compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> GateResult:
    """Fail when a headline metric present in both falls more than ``tolerance`` (relative) below baseline."""
    if not 0 <= tolerance < 1:
        raise UserError(f"tolerance must be in [0, 1), got {tolerance}")
    result = GateResult(passed=True, tolerance=tolerance)
    for name in metrics:
        if name not in current or name not in baseline or current[name] is None:
            continue
        result.compared.append(name)
        if current[name] < baseline[name] * (1 - tolerance) - 1e-12:
            result.regressions.append(Regression(name, baseline[name], current[name]))
    if not result.compared:
        raise UserError("the evaluation and the baseline share no headline metric",
                        hint=f"a baseline needs some of: {', '.join(metrics)}")
    result.passed = not result.regressions
    return result
