"""Search results and answers for coding assistants: within a token budget, never a code block cut in two, and
no result sent twice to the same session (``evorag.tools.result_budget``). The MCP search and answer tools use
these; ``seen`` is the calling session's memory, which the interface keeps per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._knowledge import MAX_SEARCH_LIMIT, KnowledgeService
from evorag.tools.result_budget import SeenResults, TokenCounter, count_itself, cut_to_fit, fit, render

MAX_RESULT_TOKENS = 200_000
# Fields of an already-sent or left-out result that stay: enough to cite it and to find it again.
_REFERENCE_FIELDS = ("id", "number", "url", "title", "section", "source", "version")
# result_tokens is fitted with the budget in its place, then replaced by the real count: a number of as many
# digits, which a tokenizer may split into as many tokens (6 digits at most). Fitting leaves room for that.
_NUMBER_SLACK = 6


@dataclass(slots=True)
class BudgetedSearch:
    """Search results as sent: ``truncated`` when the budget left results out or shortened one
    (``truncation_note`` says how to get the rest); ``next_offset`` continues the ranking; ``already_sent`` lists
    results this session has had, without their text."""

    results: list[dict]
    max_tokens: int
    result_tokens: int = 0
    truncated: bool = False
    truncation_note: str | None = None
    next_offset: int | None = None
    already_sent: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"results": self.results, "truncated": self.truncated, "truncation_note": self.truncation_note,
                "next_offset": self.next_offset, "already_sent": self.already_sent,
                "result_tokens": self.result_tokens, "max_tokens": self.max_tokens}


class BudgetedResultsService:
    def __init__(self, ctx: ServiceContext, knowledge: KnowledgeService) -> None:
        self._ctx = ctx
        self._knowledge = knowledge
        self.count_tokens = TokenCounter()

    def _budget(self, max_tokens: int | None) -> int:
        budget = self._ctx.settings.mcp_result_tokens if max_tokens is None else int(max_tokens)
        if not 200 <= budget <= MAX_RESULT_TOKENS:
            raise UserError(f"max_tokens must be between 200 and {MAX_RESULT_TOKENS}, got {budget}")
        return budget

    def search_within_budget(self, query: str, *, source: str | None = None, limit: int = 5, code: bool = False,
                             offset: int = 0, max_tokens: int | None = None, seen: SeenResults | None = None,
                             include_seen: bool = False, principal: Principal | None = None) -> BudgetedSearch:
        """``search`` (results ``offset`` to ``offset + limit`` of the ranking), fitted to ``max_tokens``
        (default EVORAG_MCP_RESULT_TOKENS). Results in ``seen`` are listed in ``already_sent`` without their
        text unless ``include_seen``; what is sent whole is added to ``seen``. Blocking (embeds the query)."""
        budget = self._budget(max_tokens)
        if not 0 <= offset < MAX_SEARCH_LIMIT or not 1 <= limit <= MAX_SEARCH_LIMIT - offset:
            raise UserError(f"offset + limit must stay within {MAX_SEARCH_LIMIT} results")
        hits = self._knowledge.search(query, source=source, limit=offset + limit, code=code, principal=principal)
        window = hits[offset:offset + limit]
        more = len(hits) == offset + limit  # the ranking may go on past this window
        repeated = [h for h in window if seen is not None and not include_seen and h.chunk.id in seen]
        fresh = [h for h in window if h not in repeated]
        items = [hit.to_dict() for hit in fresh]
        positions = [offset + window.index(hit) for hit in fresh]
        already = [{key: value for key, value in hit.to_dict().items() if key in _REFERENCE_FIELDS}
                   for hit in repeated]

        def finish(kept: list[dict]) -> dict:
            # result_tokens holds the budget until the real count replaces it (see _NUMBER_SLACK).
            result = BudgetedSearch(results=kept, max_tokens=budget, already_sent=already, result_tokens=budget)
            left_out = len(items) - len(kept)
            cut = bool(kept) and bool(kept[-1].get("cut"))
            notes = []
            if left_out:
                result.next_offset = positions[len(kept)]
                notes.append(f"{left_out} of {len(items)} results were left out to stay within max_tokens={budget}: "
                             f"call again with offset={result.next_offset}, or with a larger max_tokens")
            elif more:
                result.next_offset = offset + limit
            if cut:
                notes.append(f"result {len(kept)} was shortened to its first whole blocks (code blocks are never "
                             "split); a larger max_tokens returns it whole")
            if already:
                notes.append(f"{len(already)} results this session already received are listed in already_sent "
                             "without their text; include_seen=true sends them again")
            result.truncated = bool(left_out or cut)
            result.truncation_note = " ".join(notes) or None
            return result.to_dict()

        fitted = fit(items, budget=budget - _NUMBER_SLACK, count=self.count_tokens, finish=finish)
        if fitted.tokens > budget - _NUMBER_SLACK and already:  # their references alone are over: ids only
            already[:] = [{"id": entry["id"]} for entry in already]
            fitted = fit(items, budget=budget - _NUMBER_SLACK, count=self.count_tokens, finish=finish)
        if fitted.tokens > budget - _NUMBER_SLACK:  # said, never hidden
            over = (f"the ids of the results already sent do not fit in max_tokens={budget} (they need about "
                    f"{fitted.tokens + _NUMBER_SLACK} tokens); call again with a larger max_tokens")
            fitted.result["truncated"] = True
            fitted.result["truncation_note"] = " ".join(filter(None, [fitted.result["truncation_note"], over]))
        if seen is not None:
            seen.add(item["id"] for item in fitted.result["results"] if not item.get("cut"))
        count_itself(fitted.result, self.count_tokens)
        return BudgetedSearch(**fitted.result)

    async def aask_within_budget(self, question: str, *, source: str | None = None, evaluate: bool = True,
                                 max_tokens: int | None = None, seen: SeenResults | None = None,
                                 include_seen: bool = False, principal: Principal | None = None) -> dict:
        """``aask``, as a dict fitted to ``max_tokens``: the sources' text is kept best first while it fits, the
        others keep their citation fields (only the number when a citation has the rest) with ``left_out`` saying
        why; the answer itself is cut by whole blocks (``cut``) only when it and its citations alone are over
        budget, and a result that still does not fit says so in ``truncation_note``. Sources this session already received are not sent again
        unless ``include_seen``. Adds ``truncated``, ``truncation_note``, ``result_tokens`` and ``max_tokens``."""
        budget = self._budget(max_tokens)
        answer = await self._knowledge.aask(question, source=source, evaluate=evaluate, principal=principal)
        data = answer.to_dict()
        passages = data.pop("sources_used")
        repeated = {p["number"] for p in passages if seen is not None and not include_seen and p["chunk_ids"]
                    and all(chunk_id in seen for chunk_id in p["chunk_ids"])}
        items = [p for p in passages if p["number"] not in repeated]
        cited = {citation.get("number") for citation in data.get("citations") or []}

        def finish(kept: list[dict]) -> dict:
            sent = {p["number"]: p for p in kept}
            sources = []
            for passage in passages:
                if passage["number"] in sent:
                    sources.append(sent[passage["number"]])
                    continue
                why = "already_sent" if passage["number"] in repeated else "budget"
                # A cited source's URL, title and section are in its citation already: only its number here.
                fields = ("number",) if passage["number"] in cited else _REFERENCE_FIELDS
                sources.append({**{k: v for k, v in passage.items() if k in fields}, "content": None,
                                "left_out": why})
            left_out = [p["number"] for p in items if p["number"] not in sent]
            cut = bool(kept) and bool(kept[-1].get("cut"))
            notes = []
            if left_out:
                notes.append(f"the text of sources {left_out} was left out to stay within max_tokens={budget}; a "
                             "larger max_tokens includes it (or search for it)")
            if cut:
                notes.append(f"source {kept[-1]['number']} was shortened to its first whole blocks (code blocks are "
                             "never split)")
            if data.get("cut"):
                notes.append(answer_cut)
            if repeated:
                notes.append(f"sources {sorted(repeated)} were already sent in this session (their text is left "
                             "out); include_seen=true sends them again")
            return {**data, "sources_used": sources, "truncated": bool(left_out or cut or data.get("cut")),
                    "truncation_note": " ".join(notes) or None, "result_tokens": budget, "max_tokens": budget}

        answer_cut = (f"the answer was shortened to its first whole blocks (code blocks are never split) to stay "
                      f"within max_tokens={budget}")
        envelope = self.count_tokens(render(finish([])))
        if envelope > budget - _NUMBER_SLACK:  # the answer with its citations alone is over: cut it, by blocks
            room = (budget - _NUMBER_SLACK - self.count_tokens(answer_cut) - 1
                    - (envelope - self.count_tokens(render(data))))
            shortened = cut_to_fit(data, room, self.count_tokens, content_key="answer")
            if shortened is not None:
                data = shortened
        fitted = fit(items, budget=budget - _NUMBER_SLACK, count=self.count_tokens, finish=finish)
        if seen is not None:
            seen.add(chunk_id for p in fitted.result["sources_used"] if p.get("content") and not p.get("cut")
                     for chunk_id in p.get("chunk_ids", []))
        result = fitted.result
        if fitted.tokens > budget - _NUMBER_SLACK:  # said, never hidden: the least it sends is over budget
            result["truncated"] = True
            over = (f"the answer with its citations does not fit in max_tokens={budget} (it needs about "
                    f"{fitted.tokens + _NUMBER_SLACK} tokens); call again with a larger max_tokens")
            result["truncation_note"] = " ".join(filter(None, [result["truncation_note"], over]))
        count_itself(result, self.count_tokens)
        return result
