"""The agent half of the plugin interface: what a package registers under the ``evorag.agents`` entry point
group, and what its builders get when a team is assembled (docs/architecture.md, "Plugins").

An ``AgentPlugin`` names an agent and says how to build it for each kind of team it can join:

* ``step``: a node of an evolution graph. It shares the run's ``EvolutionState`` (request, plan, workdir with
  the candidate, verdicts) with the built-in steps. ``VerdictAgent`` is the base for a step that judges the
  candidate: its verdict is added to the run's, and a FAIL is a failed gate.
* ``chat``: a participant of a conversation team (SelectorGroupChat) or of a chat graph (GraphFlow), usually
  an AutoGen ``AssistantAgent``.

evorag's own agents are registered the same way (evorag.teams._builtins); their names cannot be taken by a
plugin, so no plugin replaces a gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_agentchat.base import ChatAgent
from autogen_core import CancellationToken
from evorag.agents._base import StepAgent
from evorag.agents._verdicts import verdict_line
from evorag.tools.candidate_dir import read_candidate
from evorag.tools.evolution import GateVerdict

# AutoGen agent names must be Python identifiers; lower case keeps them apart from verdict words.
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RISKS = ("LOW", "MEDIUM", "HIGH")
# The verdicts of the built-in gates (tools/evolution.py): a plugin's review adds a gate of its own, it does not
# speak for one of these.
BUILTIN_GATES = frozenset({"code", "dependencies", "tests", "retrieval", "approval", "deploy", "flow"})


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent builder gets. ``state`` is the evolution run's state for ``step`` builders and None for
    ``chat`` builders; ``user_input`` answers for the person at the interface (chat teams); ``approver``
    decides approvals a chat agent's tools ask for; ``limiter`` is the hourly evolution limit
    (``acquire("evolution")``); ``on_outcome`` receives the EvolutionOutcome of each tool a chat agent submits. ``knowledge`` (search, ask, crawl with the application's checks),
    ``pipeline`` (the gates, approvals, audit log) and ``memory`` are the objects the built-in agents use."""

    name: str
    team: str
    model_client: Any
    knowledge: Any = None
    pipeline: Any = None
    memory: Any = None
    state: Any = None
    approver: Any = None
    user_input: Callable | None = None
    limiter: Any = None
    on_outcome: Callable[[Any], None] | None = None


AgentBuilder = Callable[[AgentContext], ChatAgent]


@dataclass(frozen=True, slots=True)
class AgentPlugin:
    """An agent a team spec can name. At least one of ``step`` / ``chat`` is given; the agent a builder
    returns must carry ``name``. ``serve_remotely``: an ``evorag agents-worker`` may serve its chat agent
    (not the human proxy, which speaks for the person at this process's interface)."""

    name: str
    description: str
    step: AgentBuilder | None = None
    chat: AgentBuilder | None = None
    serve_remotely: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not AGENT_NAME.match(self.name):
            raise ValueError(f"agent name {self.name!r} must be lower-case letters, digits and _, starting "
                             "with a letter (at most 64)")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"agent {self.name} needs a description (the selector of a chat reads it)")
        if self.step is None and self.chat is None:
            raise ValueError(f"agent {self.name} has neither a step nor a chat builder")
        for builder in (self.step, self.chat):
            if builder is not None and not callable(builder):
                raise ValueError(f"agent {self.name}: builders must be callables taking an AgentContext")

    @property
    def flows(self) -> tuple[str, ...]:
        """The kinds of team it can join: evolution (a step), graph and conversation (a chat participant)."""
        return (("evolution",) if self.step else ()) + (("graph", "conversation") if self.chat else ())


@dataclass(frozen=True, slots=True)
class Review:
    """A ``VerdictAgent``'s judgement. ``risk`` joins the candidate's (the highest of all verdicts counts,
    an unknown value as HIGH): a review can make approval stricter, never looser."""

    ok: bool
    reason: str = ""
    risk: str = "LOW"


class VerdictAgent(StepAgent):
    """A step of an evolution graph that judges the current candidate, for plugins (e.g. a security review).

    Subclasses implement ``review(files, cancellation_token) -> Review``; ``files`` maps the candidate's
    file names (tool.py, requirements.txt, test_*.py) to their text. The verdict is recorded as the gate
    ``gate`` (in the outcome, the audit log and the approval request) and the message starts with
    ``LABEL: PASS`` or ``LABEL: FAIL reason`` (LABEL is ``gate`` in capitals), which the graph's edges read:
    ``when: FAIL`` back to code_debugger retries while attempts are left; with no FAIL edge the run ends.
    A FAIL also keeps the candidate from approval whatever the edges say: the approval step refuses files
    whose latest verdict at any gate is a failure.
    """

    def __init__(self, name: str, description: str, *, state, gate: str, model_client=None,
                 system_prompt: str = "") -> None:
        super().__init__(name, description, state=state, model_client=model_client, system_prompt=system_prompt)
        if state is None:
            raise ValueError(f"{name} is an evolution step: build it from AgentContext.state")
        if not AGENT_NAME.match(gate) or gate in BUILTIN_GATES:
            raise ValueError(f"{name}: gate {gate!r} must be a name of its own (lower case), not one of the "
                             f"built-in gates {', '.join(sorted(BUILTIN_GATES))}")
        self.gate = gate

    async def review(self, files: dict[str, str], cancellation_token: CancellationToken) -> Review:
        raise NotImplementedError

    async def step(self, messages: Sequence, cancellation_token: CancellationToken) -> str:
        state = self.state
        try:
            files = read_candidate(state.workdir)
        except Exception as exc:  # noqa: BLE001 - an unreadable candidate fails this review, it never passes
            review = Review(False, f"cannot read the candidate: {exc}", "HIGH")
        else:
            review = await self.review(files, cancellation_token)
        risk = review.risk if review.risk in RISKS else "HIGH"
        verdict = GateVerdict(self.gate, bool(review.ok), review.reason or None, risk)
        state.record(verdict)
        state.pipeline.audit.write("gate", run_id=state.run_id, agent=self.name, gate=self.gate, ok=verdict.ok,
                                   reason=verdict.reason, risk=risk)
        label = self.gate.upper()
        if verdict.ok:
            return verdict_line(label, True, f"(risk {risk})")
        if not state.attempts_left:
            return f"STOP: the {self.gate} gate failed after {state.attempts} attempts: {review.reason}"
        return verdict_line(label, False, review.reason)
