"""Per-principal quotas on API calls, and the usage counts the servers expose to Prometheus.

The interfaces call ``api_call`` once per request they serve for a principal: the MCP server per tool call (stdio
and in-memory sessions in ``call_tool``; over HTTP the endpoint's guard counts the request's tool calls before the
SDK reads them, and answers 429 with ``Retry-After`` past the limit), the chat UI per message. The evolution limit
is checked where an evolution takes its slot (evorag.tools.rate_limit).

Who is limited: every interface except the ones named in ``UNLIMITED_INTERFACES`` (an allowlist: a new interface is
limited until it is named there). The CLI and the Python API run as the person who owns EVORAG_HOME, one command
or call at a time, in a process of their own: nobody else shares what they use, and they could raise the setting
anyway. The stdio MCP server is limited although it runs as the same person: a model drives it, and a looping
assistant is what the limit is for.
"""

from __future__ import annotations

from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.costs import CostTotal

UNLIMITED_INTERFACES = frozenset({"cli", "python"})  # Principal.via values whose calls are not counted


class QuotaService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def api_call(self, principal: Principal, *, count: int = 1) -> None:
        """Count ``count`` API calls of ``principal``; raise RateLimitedError (its message says when the next one is
        possible, ``retry_after`` in seconds) past EVORAG_API_CALLS_PER_MINUTE. Calls through the CLI and the Python
        API are not counted (see the module docstring)."""
        if principal.via in UNLIMITED_INTERFACES:
            return
        self._ctx.parts.api_limiter.acquire(principal.name, count)

    def rejections(self) -> dict[tuple[str, str], int]:
        """Refusals of this process by (limit, principal). Limiters not built yet refused nothing (and are not
        built for asking)."""
        found: dict[tuple[str, str], int] = {}
        for name in ("rate_limiter", "api_limiter"):
            limiter = self._ctx.parts.built(name)
            if limiter is not None:
                found.update(limiter.rejections())
        return found

    def cost_totals(self) -> list[CostTotal]:
        """Tokens and cost of every model call so far, by principal and operation (all processes of the home)."""
        return self._ctx.parts.costs.totals()
