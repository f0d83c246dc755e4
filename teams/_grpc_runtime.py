"""AutoGen's gRPC worker runtime, repaired so that AgentChat teams (GraphFlow, SelectorGroupChat) run on it.

AgentChat 0.7.5 teams accept any ``AgentRuntime``, but on ``GrpcWorkerAgentRuntime`` 0.7.5 a team never
finishes; every failure below happens in a background task of the receiving worker, is only logged, and
leaves the sender waiting forever (found in experiments; each is covered by tests/test_distributed_runtime.py):

1. Group-chat events carry ``SerializeAsAny[BaseChatMessage]`` fields. The Pydantic serializer the runtime
   registers for them rebuilds the abstract base class: "Can't instantiate abstract class BaseChatMessage".
2. The manager's ``handle_start`` / ``handle_reset`` RPCs return None: "Unknown type NoneType".
3. ``GroupChatTermination`` and ``GroupChatError`` are published but no agent declares a handler for them,
   so nobody registers a serializer: "Unknown type GroupChatTermination".
4. Events are delivered outside ``MessageHandlerContext``: a participant's ``DefaultTopicId(...)`` gets the
   source "default" instead of the team id, so its reply reaches a second, empty group chat manager
   ("list.remove(x): x not in list").

Anything this module cannot deliver, and a lost connection to the host, resolve ``failed`` with the error
to raise instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from autogen_agentchat.base import Response, TaskResult
from autogen_agentchat.messages import MessageFactory
from autogen_agentchat.teams._group_chat._events import (
    GroupChatAgentResponse,
    GroupChatError,
    GroupChatMessage,
    GroupChatStart,
    GroupChatTeamResponse,
    GroupChatTermination,
)
from autogen_core import (
    JSON_DATA_CONTENT_TYPE,
    AgentId,
    CancellationToken,
    MessageContext,
    MessageHandlerContext,
    MessageSerializer,
    TopicId,
)
from autogen_core._serialization import try_get_known_serializers_for_type
from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime
from autogen_ext.runtimes.grpc import _constants as wire
from autogen_ext.runtimes.grpc.protos import agent_worker_pb2
from evorag.teams._remote import REMOTE_MESSAGE_TYPES

from evorag.errors import EvoragError, ExternalError, InternalError

logger = logging.getLogger(__name__)

# Built-in AgentChat message types only; StructuredMessage[...] or custom types would need registering here.
_MESSAGES = MessageFactory()


def _messages(items: list[dict] | None) -> list | None:
    return None if items is None else [_MESSAGES.create(item) for item in items]


def _response(data: dict) -> Response:
    return Response(chat_message=_MESSAGES.create(data["chat_message"]), inner_messages=_messages(data["inner_messages"]))


class _ByMessageType:
    """JSON for an event whose messages are polymorphic: each is rebuilt from its own ``type`` field."""

    data_content_type = JSON_DATA_CONTENT_TYPE

    def __init__(self, cls: type, build) -> None:
        self.cls, self._build = cls, build

    @property
    def type_name(self) -> str:
        return self.cls.__name__

    def serialize(self, message: Any) -> bytes:
        return message.model_dump_json().encode()

    def deserialize(self, payload: bytes) -> Any:
        return self._build(json.loads(payload))


class _NoneSerializer:
    """The answer of an RPC handler that returns nothing."""

    data_content_type = JSON_DATA_CONTENT_TYPE
    type_name = "NoneType"

    def serialize(self, message: None) -> bytes:
        return b"null"

    def deserialize(self, payload: bytes) -> None:
        return None


_PINNED: list[MessageSerializer[Any]] = [
    _ByMessageType(GroupChatStart, lambda d: GroupChatStart(
        messages=_messages(d["messages"]), output_task_messages=d["output_task_messages"])),
    _ByMessageType(GroupChatAgentResponse, lambda d: GroupChatAgentResponse(
        response=_response(d["response"]), name=d["name"])),
    _ByMessageType(GroupChatTeamResponse, lambda d: GroupChatTeamResponse(
        result=TaskResult(messages=_messages(d["result"]["messages"]), stop_reason=d["result"]["stop_reason"]),
        name=d["name"])),
    _ByMessageType(GroupChatMessage, lambda d: GroupChatMessage(message=_MESSAGES.create(d["message"]))),
    _NoneSerializer(),
]
_PINNED_NAMES = frozenset(serializer.type_name for serializer in _PINNED)


class TeamWorkerRuntime(GrpcWorkerAgentRuntime):
    """A ``GrpcWorkerAgentRuntime`` that AgentChat teams can run on; ``failed`` resolves when it cannot go on."""

    def __init__(self, host_address: str, **kwargs: Any) -> None:
        super().__init__(host_address, **kwargs)
        super().add_message_serializer(_PINNED)
        for cls in (GroupChatTermination, GroupChatError, *REMOTE_MESSAGE_TYPES):
            super().add_message_serializer(try_get_known_serializers_for_type(cls))
        self.failed: asyncio.Future[EvoragError] = asyncio.get_running_loop().create_future()
        self._watch: asyncio.Task | None = None

    def add_message_serializer(self, serializer: MessageSerializer[Any] | Sequence[MessageSerializer[Any]]) -> None:
        # Teams register the default (broken) serializers for their event types when they first run,
        # after ours; keep ours.
        items = list(serializer) if isinstance(serializer, Sequence) else [serializer]
        super().add_message_serializer([item for item in items if item.type_name not in _PINNED_NAMES])

    async def serves(self, agent_type: str) -> bool:
        """Whether some worker connected to the host has subscribed agents of ``agent_type``."""
        reply = await self._host_connection.stub.GetSubscriptions(agent_worker_pb2.GetSubscriptionsRequest(),
                                                                  metadata=self._host_connection.metadata)
        return any(item.typeSubscription.agent_type == agent_type for item in reply.subscriptions)

    def forget(self, agent_id: AgentId) -> None:
        """Drop an agent instance; the next message to its id creates a new one."""
        self._instantiated_agents.pop(agent_id, None)

    def fail(self, error: EvoragError) -> None:
        """Resolve ``failed``: the runs on this runtime cannot go on, and ``error`` says why."""
        if not self.failed.done():
            self.failed.set_result(error)

    def _undeliverable(self, what: str, exc: Exception) -> None:
        self.fail(InternalError(f"the agent runtime could not handle {what}: {_short(exc)}",
                                hint="a message type teams/_grpc_runtime.py does not carry; please report it"))

    async def start(self) -> None:
        await super().start()
        stream_task = self._host_connection._connection_task  # ends when the host closes or the stream breaks

        async def watch() -> None:
            try:
                await stream_task
                reason = "it closed the connection"
            except Exception as exc:  # noqa: BLE001 - the reason is reported through `failed`
                reason = _short(exc)
            self.fail(ExternalError(f"lost the connection to the agent runtime host at {self._host_address}: "
                                    f"{reason}", hint="check that `evorag agents-host` is running, then run again"))

        self._watch = asyncio.create_task(watch())

    async def stop(self) -> None:
        if not self._running:
            return
        if self._watch is not None:
            self._watch.cancel()
        # Requests the host will never answer now would keep stop() waiting for its background tasks.
        for future in list(self._pending_requests.values()):
            future.cancel()
        try:
            await asyncio.wait_for(super().stop(), timeout=10)
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - a broken stream is expected here
            logger.debug("agent runtime stopped uncleanly: %s", _short(exc))

    async def _process_request(self, request) -> None:
        try:
            await super()._process_request(request)
        except Exception as exc:  # noqa: BLE001 - the sender would wait forever for an answer
            self._undeliverable(f"a {request.payload.data_type} request", exc)

    async def _process_response(self, response) -> None:
        try:
            await super()._process_response(response)
        except Exception as exc:  # noqa: BLE001
            self._undeliverable(f"a {response.payload.data_type} response", exc)

    async def _process_event(self, event) -> None:
        # Replaces the base class's delivery: the handler runs inside MessageHandlerContext (fix 4).
        attributes = event.attributes
        message_type = attributes[wire.DATA_SCHEMA_ATTR].ce_string
        sender = None
        if wire.AGENT_SENDER_TYPE_ATTR in attributes and wire.AGENT_SENDER_KEY_ATTR in attributes:
            sender = AgentId(attributes[wire.AGENT_SENDER_TYPE_ATTR].ce_string,
                             attributes[wire.AGENT_SENDER_KEY_ATTR].ce_string)
        topic_id = TopicId(event.type, event.source)
        try:
            content_type = attributes[wire.DATA_CONTENT_TYPE_ATTR].ce_string
            if content_type != JSON_DATA_CONTENT_TYPE:
                raise ValueError(f"unsupported content type {content_type}")
            message = self._serialization_registry.deserialize(event.binary_data, type_name=message_type,
                                                               data_content_type=content_type)
            recipients = await self._subscription_manager.get_subscribed_recipients(topic_id)
        except Exception as exc:  # noqa: BLE001
            self._undeliverable(f"a {message_type} message", exc)
            return

        async def deliver(agent_id: AgentId) -> None:
            agent = await self._get_agent(agent_id)
            context = MessageContext(sender=sender, topic_id=topic_id, is_rpc=False,
                                     cancellation_token=CancellationToken(), message_id=event.id)
            with MessageHandlerContext.populate_context(agent.id):
                await agent.on_message(message, ctx=context)

        results = await asyncio.gather(*(deliver(agent_id) for agent_id in recipients if agent_id != sender),
                                       return_exceptions=True)
        for result in results:
            # A participant's own failure is already reported to its team as a GroupChatError.
            if isinstance(result, Exception):
                logger.warning("an agent failed to handle a %s message: %s", message_type, _short(result))


def _short(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0][:300]
