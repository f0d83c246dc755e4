"""Model usage and its cost: every model call's tokens, attributed to who asked and for what, priced per model,
with daily totals and a daily budget that stops paid model calls once it is spent.

* Attribution: the principal comes from ``evorag.principals.acting_principal()``; the operation (ask, evolve,
  heal, gaps...) and the agent from ``metering(operation=..., agent=...)`` blocks, which the service and the
  agents open around their work. Context variables, so concurrent calls of different principals (MCP, UI) are
  each attributed to their own, and AutoGen's runtime tasks inherit them.
* Prices: USD per 1,000 input and output tokens per model (``EVORAG_MODEL_PRICES``), looked up by the model's
  label (``openai:gpt-4o-mini``), then by its name alone (``gpt-4o-mini``). Models that run here (``local:``,
  ``replay:``, ``none``, ``forbidden``, the extractive answerer) cost nothing. A model with no price is recorded
  as unpriced: its tokens count, its cost is 0, and ``evorag costs`` says so.
* Budget (``EVORAG_DAILY_BUDGET_USD``, a UTC day): once the day's cost reaches it, calls to priced models are
  refused with ``BudgetExceededError`` before they are made (answers then fall back to the extractive answer).
  A call that started below the budget finishes and is counted: the day may end slightly above it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evorag.errors import UserError
from evorag.principals import acting_principal

# Models that run on this machine (or are no model at all): free by definition.
FREE_PREFIXES = ("local:", "replay:")
FREE_MODELS = frozenset({"none", "forbidden", "extractive"})

_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar("evorag_model_operation", default=None)
_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("evorag_model_agent", default=None)


@contextlib.contextmanager
def metering(*, operation: str | None = None, agent: str | None = None) -> Iterator[None]:
    """Attribute the model calls made inside the block to ``operation`` and/or ``agent``."""
    tokens = []
    if operation is not None:
        tokens.append((_operation, _operation.set(operation)))
    if agent is not None:
        tokens.append((_agent, _agent.set(agent)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def current_operation() -> str | None:
    return _operation.get()


def current_agent() -> str | None:
    return _agent.get()


class BudgetExceededError(UserError):
    """The daily model budget is spent: no more calls to priced models until the next UTC day."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_per_1k: float
    output_per_1k: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000


FREE = ModelPrice(0.0, 0.0)


def price_of(model: str, prices: Mapping[str, Mapping[str, float]]) -> ModelPrice | None:
    """The price of ``model`` (a label such as ``openai:gpt-4o-mini``): free for models run here, else the
    entry for the label, else for the name after the provider; None when no entry names it."""
    if model in FREE_MODELS or model.startswith(FREE_PREFIXES):
        return FREE
    for key in (model, model.partition(":")[2]):
        entry = prices.get(key) if key else None
        if entry is not None:
            return ModelPrice(float(entry.get("input", 0.0)), float(entry.get("output", 0.0)))
    return None


def utc_day(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")


def seconds_to_next_day(timestamp: float) -> float:
    now = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


@dataclass(slots=True)
class UsageRow:
    """One group of a day's model calls (by principal, operation, model or agent)."""

    key: str
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    mean_seconds: float | None
    unpriced_calls: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class CostReport:
    day: str
    total_usd: float
    budget_usd: float | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    by_principal: list[UsageRow] = field(default_factory=list)
    by_operation: list[UsageRow] = field(default_factory=list)
    by_model: list[UsageRow] = field(default_factory=list)
    by_agent: list[UsageRow] = field(default_factory=list)

    @property
    def remaining_usd(self) -> float | None:
        return None if self.budget_usd is None else max(0.0, self.budget_usd - self.total_usd)

    def to_dict(self) -> dict:
        data = {key: value for key, value in asdict(self).items() if not key.startswith("by_")}
        data["remaining_usd"] = self.remaining_usd
        for key in ("by_principal", "by_operation", "by_model", "by_agent"):
            data[key] = [row.to_dict() for row in getattr(self, key)]
        return data


@dataclass(frozen=True, slots=True)
class CostTotal:
    """All the calls of one principal for one operation, since the ledger began."""

    principal: str
    operation: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


_GROUPS = {"by_principal": "principal", "by_operation": "operation", "by_model": "model", "by_agent": "agent"}


class CostLedger:
    """The model calls of one home (SQLite, WAL: every process of the home writes to it)."""

    def __init__(self, path: Path, *, prices: Mapping[str, Mapping[str, float]], daily_budget: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.prices = dict(prices)
        self.daily_budget = daily_budget
        self.clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, ts REAL NOT NULL, day TEXT NOT NULL, "
            "principal TEXT, via TEXT, operation TEXT, agent TEXT, model TEXT NOT NULL, prompt_tokens INTEGER, "
            "completion_tokens INTEGER, cost_usd REAL NOT NULL, priced INTEGER NOT NULL, seconds REAL, "
            "ok INTEGER NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS calls_by_day ON calls (day)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def price(self, model: str) -> ModelPrice | None:
        return price_of(model, self.prices)

    def spent(self, day: str | None = None) -> float:
        """The cost of ``day``'s calls (default: today, UTC)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE day=?",
                                   (day or utc_day(self.clock()),)).fetchone()
        return float(row[0])

    def check_budget(self, model: str) -> None:
        """Raise BudgetExceededError when today's budget is spent and ``model`` costs money."""
        if self.daily_budget is None:
            return
        price = self.price(model)
        if price is not None and price == FREE:
            return
        now = self.clock()
        spent = self.spent(utc_day(now))
        if spent >= self.daily_budget:
            wait = seconds_to_next_day(now)
            raise BudgetExceededError(
                f"the daily model budget of ${self.daily_budget:.2f} is spent (${spent:.4f} today, UTC): "
                f"{model} is not called until the budget resets in {int(wait // 3600)} h {int(wait % 3600 // 60)} min",
                hint="raise EVORAG_DAILY_BUDGET_USD, or use a local model (EVORAG_LLM_PROVIDER=local)",
            )

    def record(self, *, model: str, prompt_tokens: int, completion_tokens: int, seconds: float | None = None,
               ok: bool = True, principal: str | None = None, via: str | None = None, operation: str | None = None,
               agent: str | None = None) -> float:
        """Record one call (the principal, operation and agent default to the ones acting now); returns its
        cost in USD."""
        who = acting_principal()
        principal = principal or (who.name if who else "system")
        via = via or (who.via if who else None)
        price = self.price(model)
        cost = price.cost(prompt_tokens, completion_tokens) if price is not None else 0.0
        now = self.clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO calls (ts, day, principal, via, operation, agent, model, prompt_tokens, "
                "completion_tokens, cost_usd, priced, seconds, ok) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, utc_day(now), principal, via, operation or current_operation() or "other",
                 agent or current_agent(), model, int(prompt_tokens), int(completion_tokens), cost,
                 int(price is not None), seconds, int(ok)))
        return cost

    def report(self, day: str | None = None) -> CostReport:
        """``day``'s totals (default: today, UTC), grouped by principal, operation, model and agent."""
        day = day or utc_day(self.clock())
        with self._lock:
            total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(cost_usd),0), COALESCE(SUM(prompt_tokens),0), "
                "COALESCE(SUM(completion_tokens),0) FROM calls WHERE day=?", (day,)).fetchone()
            groups = {name: self._grouped(column, "day=?", (day,)) for name, column in _GROUPS.items()}
        return CostReport(day=day, total_usd=round(float(total[1]), 6), budget_usd=self.daily_budget, calls=total[0],
                          prompt_tokens=int(total[2]), completion_tokens=int(total[3]), **groups)

    def agents_since(self, since: float) -> list[UsageRow]:
        """The calls made by agents since ``since`` (UTC seconds), grouped by agent: their tokens and mean
        latency (calls made outside any agent are left out)."""
        with self._lock:
            return self._grouped("agent", "ts>=? AND agent IS NOT NULL", (since,))

    def daily_totals(self, days: int) -> list[tuple[str, float, int]]:
        """(day, cost, calls) of each of the last ``days`` UTC days, oldest first; days without calls are 0."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        wanted = [(today - dt.timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
        with self._lock:
            found = {day: (float(cost), calls) for day, cost, calls in self._db.execute(
                "SELECT day, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM calls WHERE day>=? GROUP BY day",
                (wanted[0],))}
        return [(day, round(found.get(day, (0.0, 0))[0], 6), found.get(day, (0.0, 0))[1]) for day in wanted]

    def _grouped(self, column: str, where: str, args: tuple) -> list[UsageRow]:
        # ``column`` and ``where`` are this module's constants, never a caller's text.
        rows = self._db.execute(
            f"SELECT COALESCE({column}, '-'), COUNT(*), SUM(1 - ok), SUM(prompt_tokens), SUM(completion_tokens), "
            f"SUM(cost_usd), AVG(seconds), SUM(1 - priced) FROM calls WHERE {where} GROUP BY 1 "
            f"ORDER BY SUM(cost_usd) DESC, COUNT(*) DESC", args).fetchall()
        return [UsageRow(key=str(r[0]), calls=r[1], failed=r[2] or 0, prompt_tokens=r[3] or 0,
                         completion_tokens=r[4] or 0, cost_usd=round(float(r[5] or 0), 6),
                         mean_seconds=round(r[6], 3) if r[6] is not None else None, unpriced_calls=r[7] or 0)
                for r in rows]

    def costs_since(self, since: float) -> list[tuple[float, float]]:
        """(timestamp, cost) of every call since ``since``, oldest first (the cost stream anomaly detection
        watches)."""
        with self._lock:
            return [(float(ts), float(cost)) for ts, cost in self._db.execute(
                "SELECT ts, cost_usd FROM calls WHERE ts>=? ORDER BY ts", (since,))]

    def totals(self) -> list[CostTotal]:
        """Every call recorded so far, by principal and operation (the ledger never drops a call, so these only
        grow: Prometheus counters)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(principal, '-'), COALESCE(operation, '-'), COUNT(*), COALESCE(SUM(prompt_tokens), 0), "
                "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0) FROM calls GROUP BY 1, 2 "
                "ORDER BY 1, 2").fetchall()
        return [CostTotal(principal=str(r[0]), operation=str(r[1]), calls=int(r[2]), prompt_tokens=int(r[3]),
                          completion_tokens=int(r[4]), cost_usd=float(r[5])) for r in rows]
