"""Scripted model answers for tests and demos, on AutoGen's ReplayChatCompletionClient.

A replay file is either a JSON list, or JSON lines; each item is a string or an object with a
string ``content``::

    ["first answer", "second answer"]

    "first answer"
    {"content": "second answer"}
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from autogen_core.models import CreateResult, ModelFamily, ModelInfo
from autogen_ext.models.replay import ReplayChatCompletionClient

from evorag.errors import UserError

_HINT = "fix the file named by EVORAG_REPLAY_FILE"


def _response(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("content"), str):
        return item["content"]
    raise UserError(
        f'{where}: expected a JSON string or {{"content": "..."}}, got {json.dumps(item)[:80]}', hint=_HINT
    )


def load_replay_file(path: Path | str) -> list[str]:
    """The scripted responses in ``path``, in order.

    Raises UserError naming the file (and line, for JSON lines) when it is missing, unreadable,
    malformed or empty.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"replay file not found: {path}", hint="set EVORAG_REPLAY_FILE to an existing file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read replay file {path}: {exc}", hint=_HINT) from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})", hint=_HINT) from None
        responses = [_response(item, f"{path}: item {index}") for index, item in enumerate(items, 1)]
    else:
        responses = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: invalid JSON ({exc.msg})", hint=_HINT) from None
            responses.append(_response(item, f"{path}:{number}"))
    if not responses:
        raise UserError(f"replay file {path} has no responses", hint=_HINT)
    return responses


class ScriptedChatCompletionClient(ReplayChatCompletionClient):
    """ReplayChatCompletionClient whose exhaustion is a UserError naming the script, not a bare ValueError."""

    component_provider_override = "autogen_ext.models.replay.ReplayChatCompletionClient"

    def __init__(
        self, chat_completions: Sequence[str | CreateResult], *, source: str = "the replay script",
        model_info: ModelInfo | None = None,
    ) -> None:
        super().__init__(chat_completions, model_info=model_info)
        self._source = source

    def _check_remaining(self) -> None:
        if self._current_index >= len(self.chat_completions):
            raise UserError(
                f"{self._source} has only {len(self.chat_completions)} responses and all were used",
                hint="add responses to the replay script",
            )

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:  # type: ignore[override]
        self._check_remaining()
        return await super().create(messages, **kwargs)

    async def create_stream(self, messages: Any, **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:  # type: ignore[override]
        self._check_remaining()
        async for item in super().create_stream(messages, **kwargs):
            yield item


def replay_client(
    responses: Sequence[str | CreateResult], *, source: str = "the replay script", function_calling: bool = False
) -> ScriptedChatCompletionClient:
    """A model client answering ``responses`` in order, one per create()/create_stream() call.
    ``function_calling`` says it can call tools (agents then get theirs; the replies decide what is called)."""
    info = ModelInfo(vision=False, function_calling=function_calling, json_output=False,
                     family=ModelFamily.UNKNOWN, structured_output=False)
    return ScriptedChatCompletionClient(list(responses), source=source, model_info=info)


def replay_client_from_file(path: Path | str) -> ScriptedChatCompletionClient:
    return replay_client(load_replay_file(path), source=f"replay file {path}")
