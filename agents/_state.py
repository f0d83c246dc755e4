from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvolutionState:
    """What one evolution run knows; shared by the agents of that run (and only that run)."""

    request: str
    run_id: str
    workdir: Path
    pipeline: object
    approver: object
    max_attempts: int = 3
    docs_context: str = ""
    memory_context: str = ""
    plan: dict = field(default_factory=dict)
    attempts: int = 0
    verdicts: list = field(default_factory=list)
    last_gate: str | None = None
    last_failure: str | None = None
    signature: object | None = None
    approval_id: str | None = None
    outcome: object | None = None
    tokens: dict = field(default_factory=lambda: {"prompt": 0, "completion": 0})

    @property
    def attempts_left(self) -> bool:
        return self.attempts < self.max_attempts

    def record(self, verdict) -> None:
        self.verdicts.append(verdict)
        if not verdict.ok:
            self.last_gate, self.last_failure = verdict.gate, verdict.reason

    def add_usage(self, result) -> None:
        usage = getattr(result, "usage", None)
        if usage is not None:
            self.tokens["prompt"] += getattr(usage, "prompt_tokens", 0) or 0
            self.tokens["completion"] += getattr(usage, "completion_tokens", 0) or 0
