"""Conversations with the agent team: each turn runs the conversation team once and continues from the last turn.

A conversation is one JSON file under ``EVORAG_HOME/conversations`` (mode 0600: it holds what people and models
said): its owner, its team, the team's state to continue from (AutoGen's saved state), and the newest messages. Only its
owner can continue it; to anyone else it does not exist. One turn at a time per conversation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from evorag.errors import NotFoundError, UserError
from evorag.tools.evolution import EvolutionOutcome

_ID = re.compile(r"^[0-9a-f]{32}$")
KEEP_MESSAGES = 200  # of the whole conversation, for the record; the team's state holds what the agents saw


@dataclass(slots=True)
class TeamTurn:
    """One turn of a conversation: the messages of this turn (source, content; the person's message first),
    whether the team stopped to wait for the human (``question``: what they were asked; their next message is
    the answer), why the run stopped, and the outcome of each tool the deployer submitted in this turn."""

    conversation_id: str
    messages: list[dict]
    waiting_for_human: bool = False
    question: str | None = None
    stop_reason: str | None = None
    outcomes: list[EvolutionOutcome] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"conversation_id": self.conversation_id, "messages": self.messages,
                "waiting_for_human": self.waiting_for_human, "question": self.question,
                "stop_reason": self.stop_reason, "outcomes": [outcome.to_dict() for outcome in self.outcomes]}


@dataclass(slots=True)
class Conversation:
    id: str
    owner: str
    created_at: float
    updated_at: float
    team: str = "conversation"
    turns: int = 0
    state: dict[str, Any] | None = None
    messages: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "owner": self.owner, "created_at": self.created_at, "updated_at": self.updated_at,
                "team": self.team, "turns": self.turns, "state": self.state, "messages": self.messages}


def check_conversation_id(conversation_id: str) -> str:
    if not isinstance(conversation_id, str) or not _ID.match(conversation_id):
        raise UserError(f"invalid conversation id {str(conversation_id)[:80]!r}",
                        hint="use the conversation_id a previous turn returned (32 hex digits)")
    return conversation_id


class ConversationStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def new(self, owner: str, team: str) -> Conversation:
        now = time.time()
        return Conversation(uuid.uuid4().hex, owner, now, now, team=team)

    def get(self, conversation_id: str, owner: str) -> Conversation:
        """The conversation, if ``owner`` holds it; NotFoundError otherwise (also when someone else holds it)."""
        path = self.directory / f"{check_conversation_id(conversation_id)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            raise UserError(f"conversation {conversation_id} cannot be read ({exc})",
                            hint="start a new conversation") from None
        if not isinstance(data, dict) or data.get("owner") != owner:
            raise NotFoundError(f"no conversation {conversation_id}",
                                hint="leave the conversation id out to start a new conversation")
        return Conversation(**data)

    def save(self, conversation: Conversation) -> None:
        """Written whole, then renamed over the old file: a crash leaves the previous turn's file."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        conversation.messages = conversation.messages[-KEEP_MESSAGES:]
        path = self.directory / f"{conversation.id}.json"
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            # AutoGen's saved state holds datetimes (message times): as ISO text, which it parses back on load.
            json.dump(to_jsonable_python(conversation.to_dict()), handle, ensure_ascii=False)
        os.replace(partial, path)

    @contextlib.contextmanager
    def turn(self, conversation_id: str) -> Iterator[None]:
        """Refuses a second turn of the same conversation while one runs (in this process)."""
        with self._lock:
            if conversation_id in self._busy:
                raise UserError(f"conversation {conversation_id} is still answering the previous message",
                                hint="wait for that turn to finish, then send the next message")
            self._busy.add(conversation_id)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(conversation_id)
