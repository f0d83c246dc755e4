"""Questions that ask evorag to DO something to input they give ("convert this YAML to JSON: a: 1"), as opposed
to questions about the docs ("how do I convert a Flask response to JSON?"). A RAG over documentation cannot
answer the first kind; asked often and not answered, it is a capability evorag lacks (a tool to evolve).

Decided by allowlist, conservatively (a missed request costs less than a tool proposal nobody needs):

1. After an optional address and courtesy ("evorag,", "please", "can you", "could you please"), the first word
   is an imperative transformation verb of ``VERBS``. Anything else (how/what/why..., "explain", "show me") is a
   question about the docs.
2. The question carries the input: text after a colon or on a following line, a fenced block, a brace, bracket
   or angle bracket, or a quoted or back-ticked span that looks like data (it holds a space or a character a
   name does not have: `datetime.now()` names an API, `{"a": 1}` is data).
3. The instruction (the words before the input) is short: at most ``MAX_INSTRUCTION_WORDS`` words.

``instruction`` is what the request asks, without its input; only it is used to label, group and check a request
against the deployed tools, so the user's data never becomes part of a proposal's wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Imperative verbs that transform given input, each with its family (a tool named by a synonym does the job).
VERBS: dict[str, str] = {
    "convert": "convert", "transform": "convert",
    "format": "format", "reformat": "format", "prettify": "format", "beautify": "format", "pretty-print": "format",
    "translate": "translate", "count": "count", "extract": "extract", "validate": "validate", "verify": "validate",
    "encode": "encode", "decode": "decode", "minify": "minify", "sort": "sort", "hash": "hash", "escape": "escape",
    "unescape": "unescape", "parse": "parse", "lint": "lint", "compress": "compress", "decompress": "decompress",
}
MAX_INSTRUCTION_WORDS = 12
_COURTESY = re.compile(
    r"^\s*(?:(?:hey|hi|hello)\s+)?(?:evorag\s*[,:]?\s+)?"
    r"(?:(?:please|pls|kindly)\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?)?", re.IGNORECASE)
_QUESTION_WORDS = frozenset({"how", "what", "why", "which", "where", "when", "who", "whether", "is", "are", "does",
                             "do", "can", "should"})
# Words of an instruction that say nothing about what is transformed into what.
_FILLER = frozenset({"a", "an", "the", "this", "that", "these", "those", "my", "our", "following", "below", "it",
                     "them", "to", "into", "in", "from", "as", "of", "for", "and", "or", "with", "me", "us", "please",
                     "all", "each", "every", "text", "string", "strings", "input", "data", "file", "content",
                     "contents", "here", "some", "given", "using", "then", "out", "on", "at", "by", "against"})
_DATA_SPAN = re.compile(r"```|`([^`\n]+)`|\"([^\"\n]+)\"|'([^'\n]+)'")
_NAME_LIKE = re.compile(r"^[A-Za-z0-9_.()\-]+$")


@dataclass(frozen=True, slots=True)
class TransformationAsk:
    verb: str  # the family of the verb asked (``VERBS``)
    instruction: str  # the request without its input, lower case, single-spaced
    terms: tuple[str, ...]  # what is transformed into what ("yaml", "json"), stemmed


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9+#-]*", text.lower())


def _instruction(rest: str) -> str | None:
    """``rest`` (the text after the verb) without the input it gives, or None when it gives none. A quoted span
    inside the sentence ("translate 'bonjour le monde' into English") is cut out; the words after it stay."""
    span = next((m for m in _DATA_SPAN.finditer(rest)
                 if m.group(0) == "```" or not _NAME_LIKE.match(next(g for g in m.groups() if g is not None).strip())),
                None)
    other = _input_at(rest)
    if span is None:
        return rest[:other] if other is not None else None
    if span.group(0) == "```" or (other is not None and other < span.start()):  # the input runs to the end
        return rest[:min(span.start(), other if other is not None else span.start())]
    after = rest[span.end():]
    stop = _input_at(after)
    return rest[:span.start()] + " " + (after[:stop] if stop is not None else after)


def _input_at(rest: str) -> int | None:
    """Where input given after a colon, on a new line or in brackets starts in ``rest``, or None."""
    starts = []
    colon = re.search(r":\s*(\S)", rest)
    if colon:
        after = _words(rest[colon.start(1):])
        if not after or after[0] not in _QUESTION_WORDS:
            starts.append(colon.start())
    newline = re.search(r"\n\s*\S", rest)
    if newline:
        starts.append(newline.start())
    bracket = re.search(r"[{\[<]", rest)
    if bracket:
        starts.append(bracket.start())
    return min(starts) if starts else None


def transformation_ask(question: str) -> TransformationAsk | None:
    """The transformation ``question`` asks evorag to perform on input it gives, or None (see the module doc)."""
    text = str(question or "")
    courtesy = _COURTESY.match(text)
    body = text[courtesy.end():] if courtesy else text
    first = re.match(r"\s*([A-Za-z][A-Za-z-]*)\b", body)
    if not first or first.group(1).lower() not in VERBS:
        return None
    verb = VERBS[first.group(1).lower()]
    instruction = _instruction(body[first.end():])
    if instruction is None:
        return None
    instruction_words = _words(instruction)
    if len(instruction_words) + 1 > MAX_INSTRUCTION_WORDS:
        return None
    terms = tuple(dict.fromkeys(_stem(w) for w in instruction_words if w not in _FILLER))
    return TransformationAsk(verb, " ".join([first.group(1).lower(), *instruction_words]), terms)


def tool_does(ask: TransformationAsk, tools: Iterable[tuple[str, str]]) -> str | None:
    """The name of a deployed tool that already does ``ask`` (``tools``: name and description pairs): one whose
    name or description has a verb of the ask's family and every term the ask names; None when none does."""
    family = {_stem(verb) for verb, fam in VERBS.items() if fam == ask.verb}
    for name, description in tools:
        words = {_stem(w) for w in _words(f"{name.replace('_', ' ')} {description}")}
        if words & family and set(ask.terms) <= words:
            return name
    return None
