"""``evorag feedback``: thumbs up or down on an answer, by the answer id ``evorag ask`` shows."""

from __future__ import annotations

from typing import Annotated

import typer

from evorag.cli._app import JsonFlag, app, out, print_json, service
from evorag.errors import UserError


@app.command()
def feedback(
    answer_id: Annotated[str, typer.Argument(help="The answer's id (shown by `evorag ask`; answer_id in --json).")],
    value: Annotated[str, typer.Argument(help="up (it helped) or down (it did not).", metavar="up|down")],
    comment: Annotated[str, typer.Option(help="What was wrong or right.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Rate an answer. A thumbs-down is remembered for you: asked again, that answer's pages rank lower in your
    results; the usage analysis counts it when it looks for weak topics."""
    if not answer_id.strip().isdigit():
        raise UserError(f"the answer id is a number, got {answer_id!r}", hint="`evorag ask` shows it")
    with service() as rag:
        record = rag.feedback(int(answer_id), value, comment=comment)
    if as_json:
        print_json(record.to_dict())
        return
    out.print(f"thanks: {'up' if record.value > 0 else 'down'} recorded for answer {record.query_id}", highlight=False)
