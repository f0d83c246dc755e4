"""Team members served by another process (``evorag agents-worker``) through the agent runtime host.

AgentChat registers every participant of a team in the runtime of the process that runs the team, and the
team's output reaches the caller through an in-process queue, so a participant cannot simply be
registered elsewhere. ``RemoteAgent`` stands in for it instead: each of its turns is an RPC, through the
host, to the worker that registered the real agent under the type ``evorag.<name>``. The RPC key is the
team run's session id, so every run gets its own agent instance (its own conversation memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import ChatAgent, Response
from autogen_agentchat.messages import BaseChatMessage, MessageFactory, TextMessage, ToolCallSummaryMessage
from autogen_core import AgentId, CancellationToken, MessageContext, RoutedAgent, TypeSubscription, rpc
from pydantic import BaseModel

from evorag.errors import ExternalError, UserError

_MESSAGES = MessageFactory()
# How often a waiting RemoteAgent checks that its worker is still connected: the host answers nothing
# when the worker of an RPC disappears, so without this check the team would wait forever.
WORKER_CHECK_SECONDS = 2.0


class RemoteTurn(BaseModel):
    messages: list[dict]


class RemoteReply(BaseModel):
    chat_message: dict
    inner_messages: list[dict] = []


class RemoteRelease(BaseModel):
    """The team run is over: the worker may drop the run's agent instance."""


REMOTE_MESSAGE_TYPES = (RemoteTurn, RemoteReply, RemoteRelease)


def agent_type(name: str) -> str:
    return f"evorag.{name}"


class RemoteAgent(BaseChatAgent):
    """A participant whose turns run in the worker process that serves ``evorag.<name>``."""

    def __init__(self, name: str, description: str, runtime, *, session: str) -> None:
        super().__init__(name=name, description=description)
        self._runtime = runtime
        self._id = AgentId(agent_type(name), session)

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (TextMessage, ToolCallSummaryMessage)

    async def on_messages(self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken) -> Response:
        call = asyncio.ensure_future(self._runtime.send_message(RemoteTurn(messages=[m.dump() for m in messages]),
                                                                self._id))
        cancellation_token.link_future(call)
        while not call.done():
            await asyncio.wait({call}, timeout=WORKER_CHECK_SECONDS)
            if not call.done() and not await self._runtime.serves(self._id.type):
                call.cancel()
                error = ExternalError(f"the worker serving {self.name} disconnected during its turn",
                                      hint=f"restart `evorag agents-worker {self.name}`, then run the team again")
                # Through `failed` the team's caller gets this error as it is, not wrapped in a GroupChatError.
                self._runtime.fail(error)
                raise error
        reply: RemoteReply = call.result()
        return Response(chat_message=_MESSAGES.create(reply.chat_message),
                        inner_messages=[_MESSAGES.create(m) for m in reply.inner_messages])

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        await self.release()

    async def release(self) -> None:
        await self._runtime.send_message(RemoteRelease(), self._id)


class _ServedAgent(RoutedAgent):
    """The worker side: runs one team run's turns of a real agent."""

    def __init__(self, agent: ChatAgent) -> None:
        super().__init__(agent.description)
        self._agent = agent

    @rpc
    async def turn(self, message: RemoteTurn, ctx: MessageContext) -> RemoteReply:
        response = await self._agent.on_messages([_MESSAGES.create(m) for m in message.messages],
                                                 ctx.cancellation_token)
        return RemoteReply(chat_message=response.chat_message.dump(),
                           inner_messages=[m.dump() for m in response.inner_messages or []])

    @rpc
    async def release(self, message: RemoteRelease, ctx: MessageContext) -> None:
        self.runtime.forget(self.id)


async def serve_agent(runtime, name: str, make_agent: Callable[[], ChatAgent]) -> None:
    """Register ``evorag.<name>`` on a started ``TeamWorkerRuntime``; ``make_agent`` runs once per team run."""
    import grpc  # only worker processes of the optional gRPC runtime get here

    kind = agent_type(name)
    try:
        await _ServedAgent.register(runtime, kind, lambda: _ServedAgent(make_agent()))
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        raise UserError(f"another worker already serves {name} through this host",
                        hint="stop it first; a host routes each agent to one worker") from None
    # The host has no list of agent types; a subscription is how teams (and RemoteAgent's check) see us.
    await runtime.add_subscription(TypeSubscription(topic_type=kind, agent_type=kind))
