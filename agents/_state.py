from __future__ import annotations

import hashlib
from collections.abc import Iterable
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
    # agent -> tokens its model calls used since its last message was logged (``take_step_tokens``).
    step_tokens: dict = field(default_factory=dict)
    # The error of the model call that failed: the run ends after that step (status model_unavailable).
    model_failure: Exception | None = None
    # gate -> (ok, digest of the candidate files it judged): the latest verdict of each gate, built-in or a
    # plugin's, so the approval step can tell whether these very files passed every gate (``unmet_gates``).
    latest: dict = field(default_factory=dict)

    @property
    def attempts_left(self) -> bool:
        return self.attempts < self.max_attempts

    def record(self, verdict) -> None:
        self.verdicts.append(verdict)
        self.latest[verdict.gate] = (verdict.ok, self.candidate_digest())
        if not verdict.ok:
            self.last_gate, self.last_failure = verdict.gate, verdict.reason

    def add_usage(self, result, *, agent: str | None = None) -> None:
        """Count a model reply's tokens in the run's total and, with ``agent``, in that agent's current step."""
        usage = getattr(result, "usage", None)
        if usage is None:
            return
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        self.tokens["prompt"] += prompt
        self.tokens["completion"] += completion
        if agent is not None:
            step = self.step_tokens.setdefault(agent, {"prompt": 0, "completion": 0, "calls": 0})
            step["prompt"] += prompt
            step["completion"] += completion
            step["calls"] += 1

    def take_step_tokens(self, agent: str) -> dict | None:
        """The tokens ``agent``'s model calls used since the last time this was asked (None: no model call)."""
        return self.step_tokens.pop(agent, None)

    def candidate_digest(self) -> str:
        """SHA-256 over the names and bytes of the regular files in the workdir (the candidate as it is now)."""
        digest = hashlib.sha256()
        if self.workdir.is_dir():
            for path in sorted(self.workdir.iterdir()):
                if path.is_file() and not path.is_symlink():
                    digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def unmet_gates(self, required: Iterable[str]) -> list[str]:
        """Why the current candidate may not be put to approval: each ``required`` gate whose latest verdict
        is not a pass of exactly these files, and each other gate (a plugin's included) whose latest verdict
        on these files is a failure. Empty when it may."""
        digest = self.candidate_digest()
        problems = [f"the {gate} gate has not passed for this candidate" for gate in required
                    if self.latest.get(gate) != (True, digest)]
        problems += [f"the {gate} gate failed for this candidate" for gate, (ok, judged) in self.latest.items()
                     if not ok and judged == digest and gate not in required]
        return problems
