"""Anomaly detection on one metric stream: robust seasonal baseline, spike rule, CUSUM for shifts and drifts.

A stream is a sequence of numbers at regular steps (the aggregate of a metric per time bucket), optionally
with a seasonal phase per step (the bucket's position in the day). ``StreamState.update(value, phase)``
returns a ``Detection`` when the value starts an anomaly, else None. The state is a small JSON-able dict
(``to_dict``/``from_dict``), so a stream can be checked by a different process each time.

The model (a robust additive Holt-Winters baseline, after Gelper, Fried & Croux 2010):

    expected = level + season[phase]          residual r = value - expected          z = r / scale

* The state learns only from *cleaned* values: the residual is clipped at ``huber_k`` scales before the level,
  the season and the scale are updated, so one wild value (heavy-tailed noise) cannot drag the baseline.
* ``scale`` is an exponentially weighted mean of the absolute residual, clipped at 3 scales and divided by the
  mean of a clipped standard normal, so it estimates the standard deviation of well-behaved noise and is
  barely moved by outliers. It never goes below ``min_scale`` (a stream that is constant, e.g. an error rate
  of 0, would otherwise flag any change at all).
* Warm-up: the first ``warmup`` values (at least two seasons when there is a season) only initialise the
  baseline: median and MAD, and per phase the median of the deseasonalised values of that phase and its two
  neighbours. No alarm during warm-up.

Rules (each obeys ``direction``: a quality score only alarms downwards, a latency only upwards):

* spike: ``spike_points`` consecutive values beyond ``spike_z`` scales. A single extreme value is not an
  anomaly: in heavy-tailed data it is ordinary.
* shift / drift: a one-sided CUSUM of the residual in scales, each step clipped at ``cusum_clip``:
  ``C = max(0, C + min(z, clip) - cusum_k)``; alarm when ``C >= cusum_h``. ``cusum_k`` is half the smallest
  shift (in scales) worth detecting quickly; slower drifts accumulate until they cross ``cusum_h`` too,
  because the level adapts slowly (``level_alpha``) and learns only cleaned values. The alarm is called a
  drift when the mean residual since the CUSUM last stood at zero is below ``drift_z`` scales, else a shift.

After an alarm the level relearns: the median of the deseasonalised values since the change began, then of
those and the following ones up to ``recent`` values; the sums stay cleared until the anomaly ends. An anomaly
is reported once, and a level that stays becomes the new normal. Further alarms wait until ``clear_points``
consecutive values are back within 2 scales.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

Direction = Literal["up", "down", "both"]
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """The detector's parameters; the defaults are the ones bench/bench_anomaly.py measures."""

    direction: Direction = "both"
    season: int | None = None  # steps per seasonal period (96 for 15-minute buckets and a daily cycle)
    warmup: int = 48  # values that only initialise the baseline (raised to 2 seasons when there is a season)
    level_alpha: float = 0.01  # level smoothing: the baseline follows a slow change in ~1/alpha steps
    season_gamma: float = 0.1  # seasonal smoothing, per phase (each phase is seen once per season)
    season_width: int = 3  # neighbouring phases on each side that share in a seasonal estimate
    noise_window: int = 192  # residuals the scale and the autocorrelation are measured on (MAD)
    huber_k: float = 2.0  # residuals are clipped at this many scales before they teach the baseline
    spike_z: float = 5.0  # a spike: values this many scales away...
    spike_points: int = 2  # ...this many times in a row
    cusum_k: float = 0.5  # CUSUM allowance (scales): half the smallest shift detected quickly
    cusum_h: float = 12.0  # CUSUM alarm threshold (scales); 8 doubled the false alarms in the benchmark
    cusum_clip: float = 4.0  # largest step one value adds to the CUSUM (scales)
    drift_z: float = 1.5  # mean residual below this (scales) since the CUSUM left zero: a drift, not a shift
    recent: int = 32  # values the level relearns from after an alarm (their median)
    clear_points: int = 12  # values back within 2 scales that end an anomaly
    min_scale: float = 1e-9  # floor of the scale, in the stream's own unit

    def __post_init__(self) -> None:
        if self.direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {self.direction!r}")
        if self.season is not None and self.season < 2:
            raise ValueError("season must be at least 2 steps (or None)")
        for name in ("level_alpha", "season_gamma"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.warmup < 8 or self.noise_window < 8 or min(self.spike_points, self.recent, self.clear_points) < 1:
            raise ValueError("warmup and noise_window must be >= 8, spike_points, recent and clear_points >= 1")
        if self.min_scale <= 0:
            raise ValueError("min_scale must be positive")

    @property
    def warmup_steps(self) -> int:
        return max(self.warmup, 2 * self.season) if self.season else self.warmup


@dataclass(slots=True)
class Detection:
    """The start of an anomaly: its kind (spike, shift, drift), direction, the value, the baseline's expected
    value and the residual in scales."""

    kind: str
    direction: str
    value: float
    expected: float
    z: float
    scale: float

    def to_dict(self) -> dict:
        return asdict(self)


# Pure helpers


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def robust_location_scale(values: Sequence[float]) -> tuple[float, float]:
    """Median and MAD scaled to a normal standard deviation."""
    center = median(values)
    return center, _MAD_TO_SIGMA * median([abs(v - center) for v in values])


def seasonal_profile(values: Sequence[float], phases: Sequence[int], season: int, width: int = 3) -> list[float]:
    """Per phase, the median of the values at that phase and its ``width`` neighbours on each side, minus the
    overall median (pooling neighbours: a daily pattern is smooth, one value per day and phase is not). A phase
    that neither it nor a neighbour was seen at gets 0."""
    by_phase: list[list[float]] = [[] for _ in range(season)]
    for value, phase in zip(values, phases, strict=True):
        by_phase[phase % season].append(value)
    overall = median(values)
    profile = []
    for phase in range(season):
        pooled = [v for offset in range(-width, width + 1) for v in by_phase[(phase + offset) % season]]
        profile.append(median(pooled) - overall if pooled else 0.0)
    return profile


def clip(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


def cusum_step(total: float, z: float, *, k: float, limit: float) -> float:
    """One step of a one-sided (upwards) CUSUM of residuals in scales."""
    return max(0.0, total + min(z, limit) - k)


# The state of one stream


@dataclass(slots=True)
class StreamState:
    params: DetectorParams = field(default_factory=DetectorParams)
    steps: int = 0
    level: float = 0.0
    season: list[float] = field(default_factory=list)
    scale: float = 0.0
    autocorrelation: float = 0.0
    residuals: list[float] = field(default_factory=list)  # the last noise_window residuals
    cusum_up: float = 0.0
    cusum_down: float = 0.0
    sum_up: float = 0.0  # sum of residuals (scales) since the upward CUSUM last stood at zero
    steps_up: int = 0
    sum_down: float = 0.0
    steps_down: int = 0
    spike_up: int = 0
    spike_down: int = 0
    recent: list[float] = field(default_factory=list)  # the last few deseasonalised values
    warm: list[list[float]] = field(default_factory=list)  # [value, phase] until the warm-up ends
    in_anomaly: bool = False
    calm: int = 0
    relearn: int = 0  # values the level is the median of while it relearns after an alarm (0: not relearning)

    @property
    def ready(self) -> bool:
        return not self.warm and self.steps >= self.params.warmup_steps

    def expected(self, phase: int = 0) -> float | None:
        """The baseline's expected value at ``phase`` (None during the warm-up)."""
        if not self.ready:
            return None
        return self.level + (self.season[phase % len(self.season)] if self.season else 0.0)

    def update(self, value: float, phase: int = 0) -> Detection | None:
        """Take the next value; returns a Detection when it starts an anomaly."""
        value = float(value)
        if not math.isfinite(value):
            return None  # a missing aggregate is no evidence either way
        p = self.params
        self.steps += 1
        if not self.ready:
            self.warm.append([value, phase])
            if len(self.warm) >= p.warmup_steps:
                self._initialise()
            return None
        season_value = self.season[phase % len(self.season)] if self.season else 0.0
        expected = self.level + season_value
        scale = max(self.scale, p.min_scale)
        residual = value - expected
        z = residual / scale
        run = max(self.steps_up, self.steps_down, self.spike_up, self.spike_down)  # before _judge updates them
        detection = self._judge(z, value, expected, scale)
        self._learn(residual, scale, phase, season_value, value)
        if detection is not None:
            self._restart(run + 1)
        elif 0 < self.relearn < p.recent:
            self.relearn += 1
            self.level = median(self.recent[-self.relearn:])
        return detection

    # Rules
    def _judge(self, z: float, value: float, expected: float, scale: float) -> Detection | None:
        p = self.params
        up, down = p.direction in ("up", "both"), p.direction in ("down", "both")
        self.spike_up = self.spike_up + 1 if up and z >= p.spike_z else 0
        self.spike_down = self.spike_down + 1 if down and z <= -p.spike_z else 0
        # Autocorrelated noise (a busy hour follows a busy hour) makes sums of residuals wander further than
        # independent noise would: the CUSUM counts residuals in units of that wider spread.
        rho = self.autocorrelation
        z_sum = z / math.sqrt((1 + rho) / (1 - rho))
        if up:
            self.cusum_up = cusum_step(self.cusum_up, z_sum, k=p.cusum_k, limit=p.cusum_clip)
            self.sum_up, self.steps_up = (self.sum_up + z, self.steps_up + 1) if self.cusum_up > 0 else (0.0, 0)
        if down:
            self.cusum_down = cusum_step(self.cusum_down, -z_sum, k=p.cusum_k, limit=p.cusum_clip)
            self.sum_down, self.steps_down = ((self.sum_down - z, self.steps_down + 1) if self.cusum_down > 0
                                              else (0.0, 0))
        if self.in_anomaly:
            # The evidence was spent on the alarm: sums restart from zero until the anomaly ends.
            self._clear_sums()
            self.calm = self.calm + 1 if abs(z) < 2 else 0
            if self.calm >= p.clear_points:
                self.in_anomaly, self.calm, self.relearn = False, 0, 0
            return None
        kind, direction = None, None
        if self.spike_up >= p.spike_points or self.spike_down >= p.spike_points:
            kind, direction = "spike", "up" if self.spike_up >= p.spike_points else "down"
        elif self.cusum_up >= p.cusum_h:
            kind = "drift" if self.sum_up / max(self.steps_up, 1) < p.drift_z else "shift"
            direction = "up"
        elif self.cusum_down >= p.cusum_h:
            kind = "drift" if self.sum_down / max(self.steps_down, 1) < p.drift_z else "shift"
            direction = "down"
        if kind is None:
            return None
        self.in_anomaly, self.calm = True, 0
        return Detection(kind, direction, value, expected, round(z, 3), scale)

    # Learning
    def _learn(self, residual: float, scale: float, phase: int, season_value: float, value: float) -> None:
        p = self.params
        cleaned = self.level + season_value + clip(residual, p.huber_k * scale)
        self.level += p.level_alpha * (cleaned - season_value - self.level)
        if self.season:
            # The value teaches its phase and the phases just before it (less, further back): one value per
            # phase and day is too noisy a teacher on its own. Phases ahead are left alone, so that an anomaly
            # starting now cannot teach the baseline of the steps about to judge it.
            width = p.season_width
            for offset in range(width + 1):
                index = (phase - offset) % len(self.season)
                weight = p.season_gamma * (1 - offset / (width + 1))
                self.season[index] += weight * (cleaned - self.level - self.season[index])
        self.residuals.append(residual)
        del self.residuals[:-p.noise_window]
        self._estimate_noise()
        self.recent.append(value - season_value)
        del self.recent[:-p.recent]

    def _estimate_noise(self) -> None:
        """Scale and lag-1 autocorrelation of the recent residuals, both by MAD: a spike or a few hours of a
        shift barely move them, so an anomaly cannot widen the noise until it hides in it. The autocorrelation
        comes from the spread of successive differences (var(r_t - r_t-1) = 2 var(r) (1 - rho)), which a level
        shift does not widen either."""
        residuals = self.residuals
        if len(residuals) < 8:
            return
        self.scale = max(robust_location_scale(residuals)[1], self.params.min_scale)
        differences = robust_location_scale([b - a for a, b in itertools.pairwise(residuals)])[1]
        self.autocorrelation = min(max(1 - (differences / self.scale) ** 2 / 2, 0.0), 0.9)

    def _initialise(self) -> None:
        p = self.params
        values = [v for v, _ in self.warm]
        phases = [int(ph) for _, ph in self.warm]
        self.season = seasonal_profile(values, phases, p.season, p.season_width) if p.season else []
        deseasonalised = [v - (self.season[ph % p.season] if p.season else 0.0) for v, ph in self.warm]
        self.level = median(deseasonalised)
        self.residuals = [v - self.level for v in deseasonalised][-p.noise_window:]
        self._estimate_noise()
        self.recent = deseasonalised[-p.recent:]
        self.warm = []

    def _restart(self, run: int) -> None:
        """After an alarm: the level relearns from the values since the change began (values from before it
        would pull the new level back and raise a second alarm for the same change): the median of those, then
        of every value after them until ``recent`` values are in it (so one outlier among them does not set
        the level); the evidence is spent."""
        self.relearn = min(max(1, run), self.params.recent)
        if self.recent:
            self.level = median(self.recent[-self.relearn:])
        self._clear_sums()

    def _clear_sums(self) -> None:
        self.cusum_up = self.cusum_down = self.sum_up = self.sum_down = 0.0
        self.steps_up = self.steps_down = self.spike_up = self.spike_down = 0

    # Persistence
    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        data["params"] = asdict(self.params)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StreamState:
        params = DetectorParams(**data.get("params", {}))
        known = {f.name for f in fields(cls)} - {"params"}
        return cls(params=params, **{key: value for key, value in data.items() if key in known})
