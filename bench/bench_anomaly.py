"""Anomaly detector: false alarms on steady data and detection delay on planted anomalies, against a naive
baseline (rolling mean +- 3 standard deviations) measured on the same series in the same run.

Synthetic metric streams at 15-minute buckets (96 steps a day), built to look like real service metrics:

* heavy-tailed noise: Student's t with 3 degrees of freedom, scaled to a robust standard deviation of 1
  (MAD x 1.4826), made autocorrelated with AR(1) phi=0.3;
* daily seasonality: two harmonics of amplitude 3 and 1 (noise units), each day's amplitude x N(1, 0.1).

Every series starts with 3 days of steady data (the detector's warm-up and the baseline's window fill), then:

* steady: 7 more days; every alarm there is false (reported per 1000 steps and per day);
* planted, 1 day after the warm-up (the onset), then 2 days (drifts: 3 days) to be detected in:
  level shifts of +1, +2, +3 and +5 noise units; a 3-step spike burst of +8; a single-step spike of +15;
  linear drifts of +2 and +4 units per day. Reported: the share detected (first alarm at or after the onset,
  within the horizon), median and 90th-percentile delay in steps (x 15 min), and alarms before the onset.

Both detectors watch both directions (quality metrics alarm downwards, latencies upwards: one-sided streams
get about half the false alarms shown). The naive baseline: mean and standard deviation of the previous 96
values (one day, so the seasonality is inside its window), alarm when a value is more than 3 deviations away,
with the same episode rule as the detector (no new alarm until 12 values are back within 2 deviations).

    python bench/bench_anomaly.py [--series 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evorag.tools.anomaly import DetectorParams, StreamState

DAY = 96
WARMUP_DAYS = 3
ONSET = (WARMUP_DAYS + 1) * DAY
T3_ROBUST_SIGMA = 1.4826 * 0.7649  # MAD of Student's t with 3 degrees of freedom is 0.7649


def steady(rng: np.random.Generator, steps: int) -> np.ndarray:
    """Level + daily seasonality + AR(1) heavy-tailed noise with a robust standard deviation of 1."""
    shocks = rng.standard_t(3, steps) / T3_ROBUST_SIGMA
    noise = np.empty(steps)
    previous, phi = 0.0, 0.3
    for i, shock in enumerate(shocks):
        previous = phi * previous + math.sqrt(1 - phi * phi) * shock
        noise[i] = previous
    t = np.arange(steps)
    amplitude = np.repeat(rng.normal(1.0, 0.1, steps // DAY + 1), DAY)[:steps]
    phase1, phase2 = rng.uniform(0, 2 * math.pi, 2)
    season = amplitude * (3.0 * np.sin(2 * math.pi * t / DAY + phase1) + 1.0 * np.sin(4 * math.pi * t / DAY + phase2))
    return 100.0 + season + noise


Plant = Callable[[np.ndarray], None]


def level_shift(size: float) -> Plant:
    def plant(x: np.ndarray) -> None:
        x[ONSET:] += size
    return plant


def burst(size: float, steps: int) -> Plant:
    def plant(x: np.ndarray) -> None:
        x[ONSET:ONSET + steps] += size
    return plant


def drift(per_day: float) -> Plant:
    def plant(x: np.ndarray) -> None:
        x[ONSET:] += per_day * np.arange(len(x) - ONSET) / DAY
    return plant


SCENARIOS: list[tuple[str, Plant, int]] = [  # name, planting, horizon (steps after the onset)
    ("level shift +1", level_shift(1), 2 * DAY),
    ("level shift +2", level_shift(2), 2 * DAY),
    ("level shift +3", level_shift(3), 2 * DAY),
    ("level shift +5", level_shift(5), 2 * DAY),
    ("spike burst 3x +8", burst(8, 3), 2 * DAY),
    ("single spike +15", burst(15, 1), 2 * DAY),
    ("drift +2/day", drift(2), 3 * DAY),
    ("drift +4/day", drift(4), 3 * DAY),
]


class Robust:
    name = "robust (evorag)"

    def __init__(self) -> None:
        self.state = StreamState(DetectorParams(direction="both", season=DAY, warmup=2 * DAY))

    def update(self, value: float, step: int) -> bool:
        return self.state.update(value, step % DAY) is not None


class Naive:
    """Rolling mean +- 3 standard deviations over the previous day, with the same episode rule."""

    name = "naive mean+-3sd"

    def __init__(self, window: int = DAY, k: float = 3.0, clear: int = 12) -> None:
        self.window: deque[float] = deque(maxlen=window)
        self.k, self.clear = k, clear
        self.in_anomaly, self.calm = False, 0

    def update(self, value: float, step: int) -> bool:
        alarm = False
        if len(self.window) == self.window.maxlen:
            mean = statistics.fmean(self.window)
            sd = statistics.pstdev(self.window, mean) or 1e-9
            z = abs(value - mean) / sd
            if self.in_anomaly:
                self.calm = self.calm + 1 if z < 2 else 0
                if self.calm >= self.clear:
                    self.in_anomaly, self.calm = False, 0
            elif z > self.k:
                alarm, self.in_anomaly, self.calm = True, True, 0
        self.window.append(value)
        return alarm


DETECTORS = (Robust, Naive)


def alarms(detector, series: np.ndarray) -> list[int]:
    return [step for step, value in enumerate(series) if detector.update(float(value), step)]


def percentile(values: list[int], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100, help="series per scenario (steady: twice as many)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    steady_steps = (WARMUP_DAYS + 7) * DAY
    false = {cls.name: 0 for cls in DETECTORS}
    series_with_false = {cls.name: 0 for cls in DETECTORS}
    watched = 7 * DAY * 2 * args.series
    for _ in range(2 * args.series):
        x = steady(rng, steady_steps)
        for cls in DETECTORS:
            found = [a for a in alarms(cls(), x) if a >= WARMUP_DAYS * DAY]
            false[cls.name] += len(found)
            series_with_false[cls.name] += bool(found)

    print(f"Steady data: {2 * args.series} series x 7 days (after a 3-day warm-up), {watched} steps of 15 min\n")
    print(f"{'detector':<18} {'false alarms / 1000 steps':>26} {'per day':>9} {'series with any':>16}")
    for cls in DETECTORS:
        print(f"{cls.name:<18} {1000 * false[cls.name] / watched:>26.2f} {DAY * false[cls.name] / watched:>9.3f}"
              f" {series_with_false[cls.name] / (2 * args.series):>15.0%}")

    print(f"\nPlanted anomalies: {args.series} series each, onset 1 day after the warm-up; delay in steps of 15 min\n")
    header = f"{'anomaly':<19}" + "".join(
        f" | {cls.name[:15]:<15} {'found':>5} {'med':>4} {'p90':>5} {'early':>5}" for cls in DETECTORS)
    print(header)
    print("-" * len(header))
    for name, plant, horizon in SCENARIOS:
        row = f"{name:<19}"
        xs = []
        for _ in range(args.series):
            x = steady(rng, ONSET + horizon)
            plant(x)
            xs.append(x)
        for cls in DETECTORS:
            delays, early = [], 0
            for x in xs:
                found = alarms(cls(), x)
                early += sum(1 for a in found if WARMUP_DAYS * DAY <= a < ONSET)
                after = [a - ONSET for a in found if a >= ONSET]
                if after:
                    delays.append(after[0])
            row += (f" | {'':<15} {len(delays) / len(xs):>5.0%} {percentile(delays, 50):>4.0f}"
                    f" {percentile(delays, 90):>5.0f} {early:>5}")
        print(row)
    print(f"\n'early': alarms in the day before the onset (false), summed over the series. "
          f"Run time {time.perf_counter() - started:.0f} s, seed {args.seed}.")


if __name__ == "__main__":
    main()
