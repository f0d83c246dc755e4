"""Circuit breaker for calls to things that can go down (model endpoints, Qdrant servers, sites).

After ``failure_threshold`` consecutive failures the breaker opens: callers skip the dependency and
use their fallback at once, instead of waiting for another timeout. After ``reset_after`` seconds one
trial call is let through (half-open); its success closes the breaker again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 2
    reset_after: float = 30.0
    clock: callable = time.monotonic  # type: ignore[valid-type]
    _failures: int = 0
    _opened_at: float | None = None
    _last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self.clock() - self._opened_at >= self.reset_after else "open"

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def allow(self) -> bool:
        """True when a call may be tried now."""
        return self.state != "open"

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._last_error = None

    def record_failure(self, error: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = error
            if self._failures >= self.failure_threshold or self._opened_at is not None:
                self._opened_at = self.clock()


def retry_call(operation, *, retry_on: tuple[type[BaseException], ...], attempts: int = 3,
               base_delay: float = 0.2, max_delay: float = 5.0, breaker: CircuitBreaker | None = None):
    """Call ``operation`` with exponential backoff and jitter on ``retry_on`` errors (tenacity).

    With a ``breaker``, an open circuit fails at once (the caller's fallback runs) and every final
    outcome is recorded on it.
    """
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    if breaker is not None and not breaker.allow():
        raise CircuitOpenError(f"{breaker.name} is unavailable ({breaker.last_error}); not retrying yet")
    retrying = Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=base_delay, max=max_delay, jitter=base_delay),
        reraise=True,
    )
    try:
        result = retrying(operation)
    except retry_on as exc:
        if breaker is not None:
            breaker.record_failure(str(exc) or type(exc).__name__)
        raise
    if breaker is not None:
        breaker.record_success()
    return result


class CircuitOpenError(ConnectionError):
    """Raised instead of calling a dependency whose circuit breaker is open."""
