"""How urgent a queued request is: one function, so that every interface orders requests the same way.

    priority = ORIGIN_BASE[origin] + ROLE_STEP * (role - 1) + min(evidence, MAX_EVIDENCE)

    origin     base   what
    schedule      0   maintenance the scheduler submits: source refreshes, health checks, usage analysis
    proposal   1000   a proposal from usage analysis; ``evidence`` = how many queries support it
    user       2000   a person or a client asked for it (CLI, MCP, UI, Python)

    role (of the requester; for a schedule, of whoever set it): reader +0, operator +100, approver +200,
    admin +300.

Higher runs first; requests of equal priority run in the order they were submitted (FIFO). Each origin's
band (1000 wide) is wider than everything added inside it (at most 300 + 99), so a scheduled refresh never
overtakes anyone's request and no amount of evidence lifts a proposal above a person's request; within a
band an approver's request goes before an operator's, and a proposal backed by more queries goes first.
"""

from __future__ import annotations

from typing import Literal

from evorag.errors import UserError
from evorag.principals import Role

Origin = Literal["schedule", "proposal", "user"]
ORIGIN_BASE: dict[str, int] = {"schedule": 0, "proposal": 1000, "user": 2000}
ROLE_STEP = 100
MAX_EVIDENCE = 99


def request_priority(role: Role, *, origin: Origin = "user", evidence: int = 0) -> int:
    """The priority of a request (see the module docstring); ``evidence`` counts what supports it."""
    if origin not in ORIGIN_BASE:
        raise UserError(f"unknown request origin {origin!r}", hint="one of: " + ", ".join(ORIGIN_BASE))
    return ORIGIN_BASE[origin] + ROLE_STEP * (int(role) - 1) + min(max(int(evidence), 0), MAX_EVIDENCE)
