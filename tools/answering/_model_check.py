"""Whether a language model's answer may be shown: it cites real sources and holds nothing of its prompt.

Small models often echo their prompt (``<source id="7" title=...>``, the rules, the chat roles) or answer
without a citation. What an answer may contain is decided by allowlist, not by a list of bad strings:

* citations: at least one ``[n]``, and every ``n`` one of the numbered sources;
* anything in angle brackets (a tag, a chat-template token such as ``<|im_start|>``) only when the sources
  contain exactly that text (an HTML example copied from the docs); the prompt's own delimiters never appear
  in the sources as given to the model (they are neutralised there), so an echo of them is always refused;
* no wording of the prompt template (its rules, the answer cue) unless the sources contain it too, and no
  line opening with a chat role label (``assistant:``).

The grounding gate (is each claim supported by the sources?) comes after this, in the service.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evorag.tools.answering._citations import cited_numbers
from evorag.tools.answering._context import Passage
from evorag.tools.answering._prompt import MESSAGE_ROLES, template_phrases

_BRACKETED = re.compile(r"<[^<>\s][^<>]{0,200}>")
_ROLE_LINE = re.compile(rf"^\s*(?:{'|'.join(MESSAGE_ROLES)})\s*:", re.IGNORECASE | re.MULTILINE)
_TEMPLATE_PHRASES = template_phrases()


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


def model_answer_problem(text: str, passages: Sequence[Passage]) -> str | None:
    """Why the model answer ``text`` must not be shown, or None when it may (before the grounding gate)."""
    numbers = cited_numbers(text)
    valid = {passage.number for passage in passages}
    if not numbers:
        return "it cites no source"
    unknown = [number for number in numbers if number not in valid]
    if unknown:
        listed = ", ".join(f"[{number}]" for number in unknown)
        return f"it cites {listed}, which {'is' if len(unknown) == 1 else 'are'} not among the {len(valid)} sources"
    sources = "\n".join(passage.text for passage in passages)
    for match in _BRACKETED.finditer(text):
        if match.group(0) not in sources:
            return f"it contains markup that is not in the sources ({match.group(0)[:40]})"
    flat_text, flat_sources = _flat(text), _flat(sources)
    for role in _ROLE_LINE.finditer(text):
        line = text[role.start():].split("\n", 1)[0]
        if _flat(line) not in flat_sources:
            return f"it contains a chat role label ({role.group(0).strip()})"
    for phrase in _TEMPLATE_PHRASES:
        if phrase in flat_text and phrase not in flat_sources:
            return f"it repeats its instructions (\"{phrase[:40]}\")"
    return None
