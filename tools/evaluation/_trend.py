"""Improvement trend of a score over the last N iterations.

Given the scores oldest first, the trend over the window (the last ``window`` scores) has:

* ``slope``: least-squares slope of score against iteration number (score units per iteration);
* ``relative_change``: (mean of the newer half - mean of the older half) / mean of the older half. With
  an odd window the middle score belongs to neither half. When the older mean is 0 the ratio is
  undefined and ``relative_change`` is None; ``absolute_change`` (newer mean - older mean) is always set;
* ``direction``: "insufficient data" with fewer than 2 scores (or ``min_points``), "flat" when
  ``|slope| <= flat_tolerance``, else "improving" or "declining" by the sign of the slope.

None values (a metric that did not apply to an iteration) are dropped before the window is taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from evorag.errors import UserError

Direction = Literal["improving", "declining", "flat", "insufficient data"]


@dataclass(slots=True, frozen=True)
class Trend:
    direction: Direction
    slope: float | None
    relative_change: float | None
    window: int  # how many scores the trend was computed over
    absolute_change: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def least_squares_slope(values: list[float]) -> float:
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    denominator = sum((x - mean_x) ** 2 for x in range(n))
    return numerator / denominator if denominator else 0.0


def compute_trend(
    scores: Iterable[float | None],
    window: int = 10,
    *,
    flat_tolerance: float = 0.005,
    min_points: int = 2,
) -> Trend:
    """Trend of ``scores`` (oldest first) over the last ``window`` values; see the module docstring.

    Raises UserError for a window < 2 or a negative tolerance.
    """
    if not isinstance(window, int) or window < 2:
        raise UserError(f"trend window must be an integer >= 2, got {window!r}", hint="use e.g. --window 10")
    if flat_tolerance < 0:
        raise UserError("flat_tolerance must be >= 0")
    values = [float(v) for v in scores if v is not None][-window:]
    if len(values) < max(2, min_points):
        return Trend("insufficient data", None, None, len(values), None)
    slope = least_squares_slope(values)
    half = len(values) // 2
    older = sum(values[:half]) / half
    newer = sum(values[-half:]) / half
    absolute = newer - older
    relative = absolute / older if older != 0 else None
    if abs(slope) <= flat_tolerance:
        direction: Direction = "flat"
    else:
        direction = "improving" if slope > 0 else "declining"
    return Trend(direction, slope, relative, len(values), absolute)
