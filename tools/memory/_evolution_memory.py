"""The evolution team's long-term memory: every request, how it ended, and why it failed.

The pipeline calls ``record_outcome`` after each run; the orchestrator calls ``await context_for(request)``
before planning, and gets the most similar past requests as a short bullet list for its prompt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol, Self

from evorag.tools.memory import _backend

from evorag.settings import Settings

logger = logging.getLogger(__name__)

# Scope of these memories in mem0 (which requires one of user_id/agent_id/run_id).
USER_ID = "evorag"
AGENT_ID = "evolution"
KIND = "evolution"
MIN_SCORE = _backend.MIN_SCORE
_REQUEST_CHARS = 300
_REASON_CHARS = 400
_ENTITY_ID = re.compile(r"^\S{1,200}$")


class Outcome(Protocol):
    """What ``record_outcome`` reads (``evorag.tools.evolution.EvolutionOutcome`` fits)."""

    status: str
    gate: str | None
    reason: str | None
    tool: str | None
    risk: str
    run_id: str


def _one_line(text: object, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_outcome(request: str, outcome: Outcome) -> str:
    """The stored text: ``request: ... -> rejected at tests: AssertionError ...`` (one line, bounded)."""
    status = getattr(outcome, "status", None) or "unknown"
    gate = getattr(outcome, "gate", None)
    reason = getattr(outcome, "reason", None)
    tool = getattr(outcome, "tool", None)
    risk = getattr(outcome, "risk", None)
    text = f"request: {_one_line(request, _REQUEST_CHARS)} -> {status}"
    if status == "deployed":
        text += f" as tool {tool}" if tool else ""
        text += f" (risk {risk})" if risk else ""
    else:
        text += f" at {gate}" if gate else ""
        text += f": {_one_line(reason, _REASON_CHARS)}" if reason else ""
        text += f" (tool {tool})" if tool else ""
    return text


class EvolutionMemory:
    """mem0 memory of evolution requests and outcomes, under ``EVORAG_HOME/memory`` (see ``evorag.tools.memory``).

    Cheap to construct: mem0 and the embedding model load on first use (seconds, once per process and
    location). ``record_outcome``, ``search`` and ``clear`` raise ``ConfigError``/``StoreError`` (see
    ``_backend``) or mem0's own errors; the pipeline catches them. ``context_for`` never raises.
    """

    def __init__(self, settings: Settings, *, min_score: float = MIN_SCORE) -> None:
        self.settings = settings
        self.min_score = min_score
        self._lease = _backend.Lease(self, settings)

    def _open(self) -> _backend.Backend:
        return self._lease.get()

    def record_outcome(self, request: str, outcome: Outcome) -> None:
        """Store one finished (or pending) evolution run."""
        metadata = {
            "kind": KIND,
            "request": _one_line(request, _REQUEST_CHARS),
            "status": getattr(outcome, "status", None),
            "gate": getattr(outcome, "gate", None),
            "reason": _one_line(getattr(outcome, "reason", None), _REASON_CHARS) or None,
            "tool": getattr(outcome, "tool", None),
            "risk": getattr(outcome, "risk", None),
            "evolution_run_id": getattr(outcome, "run_id", None) or None,
        }
        run_id = metadata["evolution_run_id"]
        backend = self._open()
        with backend.lock:
            backend.memory.add(
                describe_outcome(request, outcome),
                user_id=USER_ID,
                agent_id=AGENT_ID,
                # mem0's own run scope; it rejects ids with whitespace, so only well-formed ones go there.
                run_id=run_id if isinstance(run_id, str) and _ENTITY_ID.match(run_id) else None,
                metadata=metadata,
                infer=False,
            )

    def search(self, query: str, limit: int = 5, *, min_score: float | None = None) -> list[dict[str, Any]]:
        """Past runs most similar to ``query``, best first: ``[{"text", "metadata", "score"}]``."""
        if not query or not query.strip() or limit < 1:
            return []
        threshold = self.min_score if min_score is None else min_score
        backend = self._open()
        with backend.lock:
            found = backend.memory.search(
                query,
                top_k=limit,
                filters={"user_id": USER_ID, "agent_id": AGENT_ID, "kind": KIND},
                threshold=max(0.0, min(1.0, threshold)),
            )
        return [_hit(item) for item in found.get("results", [])]

    async def context_for(self, request: str, limit: int = 5) -> str:
        """A bullet list of the most similar past requests and how they ended; '' when none or on any error."""
        try:
            hits = await asyncio.to_thread(self.search, request, limit)
        except Exception as exc:  # noqa: BLE001 - memory is advisory: a run must never fail on it
            logger.warning("evolution memory unavailable: %s", exc)
            return ""
        lines: list[str] = []
        for hit in hits:
            line = f"- {hit['text']}"
            if line not in lines:
                lines.append(line)
        return "\n".join(lines)

    def all(self, limit: int = 100) -> list[dict[str, Any]]:
        """Every stored run (up to ``limit``), in no particular order."""
        backend = self._open()
        with backend.lock:
            found = backend.memory.get_all(filters={"user_id": USER_ID, "agent_id": AGENT_ID}, top_k=limit)
        return [_hit(item) for item in found.get("results", [])]

    def clear(self) -> None:
        """Forget every evolution run (other mem0 scopes in the same store are kept)."""
        backend = self._open()
        with backend.lock:
            backend.memory.delete_all(user_id=USER_ID, agent_id=AGENT_ID)

    def close(self) -> None:
        """Let go of the store (the last user in the process closes it); using the memory again reopens it."""
        self._lease.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hit(item: dict) -> dict[str, Any]:
    metadata = dict(item.get("metadata") or {})
    for key in ("created_at", "updated_at"):
        if item.get(key):
            metadata[key] = item[key]
    metadata.setdefault("run_id", metadata.get("evolution_run_id"))
    score = item.get("score")
    return {"text": item.get("memory", ""), "metadata": metadata, "score": float(score) if score is not None else None}
