"""The conversation team's two deterministic members: the human, and the deployer that ships a tool through the gates.

* ``ConversationHuman``: the person, asked through the interface's ``answer(question)``. When nobody can answer
  now (``answer`` is None or returns None: an MCP client without elicitation, a chat where the person types their
  reply as their next message), the team stops and waits: the person's next message is the answer.
* ``ConversationDeployer``: submits the newest ``tool.py`` (and its ``test_*.py``) written in the conversation to
  the evolution pipeline: code and dependency gates, sandbox tests, then the approver (the interface's inline
  Approve/Reject, elicitation or a pending request), then the deploy. Every submission counts against the hourly
  evolution limit. It needs no model, so it works with models that cannot call functions; a tool written
  without tests gets them from its ``test_writer`` (the team's model), else the tests gate refuses it.
"""

from __future__ import annotations

import asyncio
import inspect
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autogen_agentchat.agents import BaseChatAgent, UserProxyAgent
from autogen_agentchat.base import Response
from autogen_agentchat.conditions import ExternalTermination
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, TextMessage
from autogen_core import CancellationToken
from evorag.agents._base import last_text
from evorag.agents._parsing import extract_files
from evorag.tools.rate_limit import counted_use

from evorag.errors import EvoragError

Answer = Callable[[str], "str | None | Awaitable[str | None]"]  # sync ones run in a thread
# What the human "says" when the run stops for their answer; their next message is the real one.
WAITING = "(no answer yet: the human replies in their next message)"
# Kept of the newest candidate between turns (the conversation's state is stored as JSON).
MAX_CANDIDATE_CHARS = 60_000


class ConversationHuman(UserProxyAgent):
    """The human proxy of the conversation team. ``stop`` belongs in the team's termination condition: it fires
    when the human was asked and nobody could answer, and ``waiting`` then says so."""

    def __init__(self, answer: Answer | None = None, *, name: str = "human",
                 description: str = "The human who asked; answers questions and decides.") -> None:
        super().__init__(name, description=description, input_func=self._ask)
        self._answer = answer
        self.stop = ExternalTermination()
        self.question = ""  # the newest message the human was asked to answer
        self.waiting = False

    async def on_messages_stream(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
                                 ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        self.question = last_text(messages) or self.question
        async for item in super().on_messages_stream(messages, cancellation_token):
            yield item

    async def _ask(self, prompt: str, cancellation_token: CancellationToken | None = None) -> str:
        answer = self._answer
        if answer is None:
            reply = None
        elif inspect.iscoroutinefunction(answer) or inspect.iscoroutinefunction(type(answer).__call__):
            reply = await answer(self.question)
        else:  # a terminal prompt blocks: not on the event loop
            reply = await asyncio.to_thread(answer, self.question)
        if reply is None or not str(reply).strip():
            self.waiting = True
            self.stop.set()
            return WAITING
        return str(reply)


class ConversationDeployer(BaseChatAgent):
    """Ships the newest candidate of the conversation through the evolution pipeline (see the module docstring).

    ``pipeline`` is the EvolutionPipeline, ``approver`` decides (tools.approvals.Approver), ``limiter`` counts the
    submission against the hourly evolution limit, ``on_outcome`` receives every EvolutionOutcome, ``test_writer``
    (tools.test_writing.TestWriter) writes the tests of a tool submitted without them (without one, such a tool
    is rejected at the tests gate, which says to add tests or configure a model). Its message starts with a
    verdict word (``DEPLOYED``, ``PENDING``, ``REJECTED``, ``NOTHING``, ``REFUSED``).
    """

    def __init__(self, *, pipeline, approver, limiter, on_outcome: Callable[[Any], None] | None = None,
                 test_writer: Callable[[Any], Awaitable[Any]] | None = None, name: str = "deployer") -> None:
        super().__init__(name, description=(
            "Submits the newest tool.py (a fenced ```python tool.py``` block, with its ```python test_tool.py``` "
            "tests) written in this conversation to evorag's gates (code, dependencies, sandbox tests), asks the "
            "human to approve it and deploys it. Choose it once a tool's code and tests are in the conversation."))
        self._pipeline = pipeline
        self._approver = approver
        self._limiter = limiter
        self._on_outcome = on_outcome
        self._test_writer = test_writer
        self._request = ""
        self._candidate = ""  # the newest message holding a tool.py block

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (TextMessage,)

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
                          ) -> Response:
        for message in messages:
            content = getattr(message, "content", None)
            if not isinstance(content, str):
                continue
            if message.source == "user":
                self._request = content
            if "tool.py" in extract_files(content):
                self._candidate = content[:MAX_CANDIDATE_CHARS]
        return Response(chat_message=TextMessage(content=await self._submit(), source=self.name))

    async def _submit(self) -> str:
        files = extract_files(self._candidate) if self._candidate else {}
        if "tool.py" not in files:
            return ("NOTHING to submit: no message holds a ```python tool.py``` block with the tool's code yet "
                    "(and ```python test_tool.py``` with its tests).")
        request = " ".join(self._request.split())[:500] or "a tool proposed in a conversation"
        try:
            async with counted_use(self._limiter, "evolution"):  # given back if the infrastructure fails
                with tempfile.TemporaryDirectory(prefix="evorag-conversation-") as tmp:
                    for name, text in files.items():
                        (Path(tmp) / name).write_text(text, encoding="utf-8")
                    outcome = await self._pipeline.run(Path(tmp), request=request, approver=self._approver,
                                                       test_writer=self._test_writer)
        except EvoragError as exc:
            return f"REFUSED: {exc}"
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome_text(outcome)

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        self._request = self._candidate = ""

    async def save_state(self) -> Mapping[str, Any]:
        return {"request": self._request, "candidate": self._candidate}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self._request = str(state.get("request") or "")
        self._candidate = str(state.get("candidate") or "")[:MAX_CANDIDATE_CHARS]


def outcome_text(outcome) -> str:
    """The deployer's message: a verdict line, then one line per gate."""
    tool = f" {outcome.tool}" if outcome.tool else ""
    if outcome.status == "deployed":
        head = f"DEPLOYED:{tool} (version {(outcome.version_id or '')[:12]})"
    elif outcome.status == "pending":
        head = f"PENDING:{tool} waits for approval {outcome.approval_id}: {outcome.reason}"
    else:
        head = f"REJECTED:{tool} at the {outcome.gate} gate: {outcome.reason}"
    gates = [f"- {v.gate}: {'pass' if v.ok else 'fail'}" + (f" ({v.reason})" if v.reason else "")
             for v in outcome.verdicts]
    return "\n".join([head, *gates])
