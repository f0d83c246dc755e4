"""When a schedule runs: ``hourly``, ``daily``, ``weekly``, ``every N[m|h|d]`` or a 5-field cron expression.

Times are UTC epoch seconds. Intervals are anchored where the schedule was set: ``daily`` set at 09:30 runs at
09:30 every day (its first run a day after it was set). Cron expressions (minute hour day-of-month month
day-of-week, read in UTC) support ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` / ``a-b/n``;
day-of-week is 0-7 with 0 and 7 both Sunday, and as in cron a day matches when either day field matches if
both are restricted.

``next_after(t, anchor)`` is the first occurrence strictly after ``t``: a scheduler that was down for a week
asks once and gets the next future occurrence, so missed runs collapse into the one it submits at start.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from typing import Protocol

from evorag.errors import UserError

MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86_400
_NAMED = {"hourly": 3_600, "daily": 86_400, "weekly": 7 * 86_400}
_UNITS = {"m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3_600, "hour": 3_600, "hours": 3_600,
          "d": 86_400, "day": 86_400, "days": 86_400}
_EVERY = re.compile(r"^every\s+(\d{1,6})\s*([a-z]+)$")
_HINT = ('use "hourly", "daily", "weekly", "every 6h" / "every 30m" / "every 2d", or a cron expression with '
         '5 fields such as "0 3 * * *" (UTC)')


class Clock(Protocol):
    """Wall-clock time as UTC epoch seconds: what schedules and leases store and compare across processes.
    Waiting between checks uses the event loop's monotonic clock instead; tests pass a fake ``Clock``."""

    def time(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return time.time()


class Recurrence(Protocol):
    text: str

    def next_after(self, after: float, anchor: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``seconds``, counted from ``anchor`` (when the schedule was set)."""

    seconds: int
    text: str

    def next_after(self, after: float, anchor: float) -> float:
        if after < anchor:
            return anchor + self.seconds
        periods = math.floor((after - anchor) / self.seconds) + 1
        return anchor + periods * self.seconds


@dataclass(frozen=True, slots=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def next_after(self, after: float, anchor: float = 0.0) -> float:
        moment = dt.datetime.fromtimestamp(math.floor(after / 60) * 60 + 60, dt.UTC)
        # Each step skips a whole month, day, hour or minute that cannot match: a few hundred steps at most
        # for any expression that matches at all within five years.
        for _ in range(50_000):
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(moment):
                moment = (moment + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + dt.timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += dt.timedelta(minutes=1)
            else:
                return moment.timestamp()
        raise UserError(f"the cron expression {self.text!r} never matches", hint=_HINT)

    def _day_matches(self, moment: dt.datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day or weekday
        return day and weekday


def parse_recurrence(text: str) -> Recurrence:
    """A schedule from its text; UserError naming what is wrong otherwise."""
    spec = " ".join(str(text or "").lower().split())
    if spec in _NAMED:
        return Every(_NAMED[spec], spec)
    match = _EVERY.match(spec)
    if match:
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise UserError(f"unknown unit {match.group(2)!r} in schedule {text!r}", hint=_HINT)
        seconds = int(match.group(1)) * unit
        if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
            raise UserError(f"schedule {text!r} is out of range", hint="intervals go from 1 minute to 366 days")
        return Every(seconds, spec)
    fields = spec.split(" ")
    if len(fields) == 5:
        cron = _parse_cron(spec, fields)
        cron.next_after(0.0)  # refuses an expression that never matches (31 February) now, not at run time
        return cron
    raise UserError(f"cannot read the schedule {text!r}", hint=_HINT)


_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _parse_cron(spec: str, fields: list[str]) -> Cron:
    values = [_parse_field(field, low, high, name, spec)
              for field, (low, high), name in zip(fields, _RANGES, _FIELD_NAMES, strict=True)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    return Cron(spec, values[0], values[1], values[2], values[3], weekdays,
                days_restricted=not fields[2].startswith("*"), weekdays_restricted=not fields[4].startswith("*"))


def _parse_field(field: str, low: int, high: int, name: str, spec: str) -> frozenset[int]:
    chosen: set[int] = set()
    for part in field.split(","):
        match = re.fullmatch(r"(\*|\d{1,2}(?:-\d{1,2})?)(?:/(\d{1,2}))?", part)
        if not match:
            raise UserError(f"cannot read the {name} field {field!r} of cron expression {spec!r}", hint=_HINT)
        span, step = match.group(1), int(match.group(2) or 1)
        if span == "*":
            first, last = low, high
        else:
            first, _, end = span.partition("-")
            first, last = int(first), int(end or first)
            if match.group(2) and not end:  # "5/15": from 5 to the end, as cron reads it
                last = high
        if not (low <= first <= last <= high) or step < 1:
            raise UserError(f"the {name} field {field!r} of cron expression {spec!r} is out of range",
                            hint=f"{name} goes from {low} to {high}")
        chosen.update(range(first, last + 1, step))
    return frozenset(chosen)
