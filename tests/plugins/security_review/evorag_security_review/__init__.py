"""A security reviewer for evorag's agent teams, added without editing evorag.

* ``SECURITY_REVIEWER`` (entry point group ``evorag.agents``): as a step of an evolution graph it asks its model
  to review the candidate and records the verdict as the gate ``security_review``; as a chat participant it is
  an assistant with the same instructions.
* ``EVOLUTION_REVIEWED`` (``evorag.teams``): evorag's evolution team with the review inserted before the
  integration tester; a FAIL ends the run before any test runs (evolution_reviewed.yaml).
* ``SECURITY_AUDIT`` (``evorag.teams``): a team of its own: the reviewer judges the code it is given and, on a
  FAIL, the orchestrator says how to fix it (security_audit.yaml).
"""

from __future__ import annotations

from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from evorag.agents import AgentContext, AgentPlugin, Review, VerdictAgent
from evorag.teams import load_team_spec

HERE = Path(__file__).parent
INSTRUCTIONS = ("You review a Python tool for security problems: network or file access, running processes, "
                "leaking secrets. The first line of your reply is PASS, or FAIL: followed by the reason.")


class SecurityReviewer(VerdictAgent):
    async def review(self, files: dict[str, str], cancellation_token) -> Review:
        code = "\n\n".join(f"# file {name}\n{text}" for name, text in sorted(files.items()))
        reply = (await self.ask_model(code, cancellation_token)).strip()
        first = reply.splitlines()[0].strip() if reply else ""
        if first.upper().startswith("PASS"):
            return Review(True, first)
        # Anything but an explicit PASS fails: a reviewer that says nothing useful has not reviewed.
        reason = first[4:].lstrip(" :") if first.upper().startswith("FAIL") else first
        return Review(False, reason or "the reviewer gave no verdict", risk="MEDIUM")


def _step(ctx: AgentContext) -> SecurityReviewer:
    return SecurityReviewer(ctx.name, "Reviews the candidate tool for security problems.", state=ctx.state,
                            gate="security_review", model_client=ctx.model_client, system_prompt=INSTRUCTIONS)


def _chat(ctx: AgentContext) -> AssistantAgent:
    return AssistantAgent(ctx.name, ctx.model_client, description="Reviews code for security problems.",
                          system_message=INSTRUCTIONS)


SECURITY_REVIEWER = AgentPlugin("security_reviewer", "Reviews tool code for security problems before it is tested.",
                                step=_step, chat=_chat)
EVOLUTION_REVIEWED = load_team_spec(HERE / "evolution_reviewed.yaml")
SECURITY_AUDIT = load_team_spec(HERE / "security_audit.yaml")
