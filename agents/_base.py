from __future__ import annotations

from collections.abc import Sequence

from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import BaseChatMessage, TextMessage
from autogen_core import CancellationToken
from autogen_core.models import SystemMessage, UserMessage
from evorag.tools.costs import metering

from evorag.errors import ExternalError, UserError


class _ModelFailed(Exception):
    """Raised by ``ask_model`` out of a step whose model failed; ``on_messages`` turns it into the step's STOP."""


class StepAgent(BaseChatAgent):
    """An agent doing one step of a flow: deterministic work, optionally with a model call.

    Subclasses implement ``step`` and return the text of their message; the first line is the verdict
    the flow's edges read (e.g. ``TESTS: PASS``).
    """

    def __init__(self, name: str, description: str, *, state, model_client=None, system_prompt: str = "") -> None:
        super().__init__(name=name, description=description)
        self.state = state
        self.model_client = model_client
        self.system_prompt = system_prompt

    @property
    def produced_message_types(self):
        return (TextMessage,)

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> Response:
        try:
            text = await self.step(messages, cancellation_token)
        except _ModelFailed:
            # The step ends here, and the run with it (the flow's termination watches ``state.model_failure``):
            # an error crossing AutoGen's runtime would be logged with a traceback by every agent it reaches.
            text = f"STOP: the model failed: {self.state.model_failure}"
        return Response(chat_message=TextMessage(content=text, source=self.name))

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        return None

    async def step(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> str:
        raise NotImplementedError

    async def ask_model(self, prompt: str, cancellation_token: CancellationToken | None = None) -> str:
        if self.model_client is None:
            return ""
        try:
            with metering(agent=self.name):  # the cost ledger attributes the call to this agent
                result = await self.model_client.create(
                    [SystemMessage(content=self.system_prompt), UserMessage(content=prompt, source="user")],
                    cancellation_token=cancellation_token,
                )
        except (ExternalError, UserError) as exc:
            # An endpoint down or timing out, a rejected key, a spent budget: what the model clients raise for
            # the person to fix. An InternalError (a bug, the test suite's forbidden model) still propagates.
            self.state.model_failure = exc
            raise _ModelFailed from exc
        self.state.add_usage(result, agent=self.name)
        content = result.content
        return content if isinstance(content, str) else str(content)


def last_text(messages: Sequence[BaseChatMessage]) -> str:
    for message in reversed(messages):
        content = getattr(message, "content", None)
        if isinstance(content, str):
            return content
    return ""
