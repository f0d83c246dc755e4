"""The chat's thumbs up/down (Chainlit's feedback buttons under an answer) as evorag feedback.

Chainlit stores the click in the chat history (the data layer's ``feedbacks`` table) and then calls the app's
``on_feedback`` with a ``Feedback`` naming the message (``forId``) and ``value`` 1 (up) or 0 (down). The app
remembers which answer each message showed (``remember_answer``); ``give_feedback`` turns the click into
``Evorag.feedback`` for the logged-in principal. Plain functions: no Chainlit import here.
"""

from __future__ import annotations

import asyncio
import logging

from evorag.errors import NotFoundError, UserError
from evorag.principals import Principal

log = logging.getLogger("evorag.ui")
MAX_REMEMBERED = 500  # answers per chat session whose message can still be rated


def remember_answer(answers: dict[str, int], message_id: str, answer_id: int | None) -> None:
    """Note that message ``message_id`` shows answer ``answer_id`` (kept for the newest MAX_REMEMBERED)."""
    if answer_id is None:
        return
    answers[message_id] = answer_id
    while len(answers) > MAX_REMEMBERED:
        answers.pop(next(iter(answers)))


def thumbs(value: object) -> int:
    """Chainlit's feedback value (1 up, 0 down) as evorag's (+1, -1)."""
    if value == 1 and not isinstance(value, bool):
        return 1
    if value == 0 and not isinstance(value, bool):
        return -1
    raise UserError(f"feedback from the chat is 1 (up) or 0 (down), got {value!r}")


async def give_feedback(service, who: Principal, feedback, answers: dict[str, int]):
    """Record a chat feedback click (``feedback``: Chainlit's Feedback) for ``who``; the stored record.

    A click on a message that showed no answer (a crawl report, help), or one from a chat no longer in memory,
    is a NotFoundError: there is no answer to attach it to."""
    answer_id = answers.get(str(getattr(feedback, "forId", "")))
    if answer_id is None:
        raise NotFoundError("that message is not an answer this chat session can rate",
                            hint="rate answers given since the chat (re)started")
    value = thumbs(getattr(feedback, "value", None))
    comment = getattr(feedback, "comment", None) or ""
    return await asyncio.to_thread(service.feedback, answer_id, value, comment=comment, principal=who)
