"""How well an answer matches a reference answer that names API identifiers (docs-dev's ``answer`` field).

* ``api_names(reference)``: the identifiers a reference names -- dotted names (``werkzeug.utils.secure_filename``,
  ``pytest.ini``), snake_case and SCREAMING_CASE names (``tmp_path``, ``MAX_CONTENT_LENGTH``), CamelCase names
  with two capitals or more (``ProxyFix``), calls (``flash(``), decorators and ``--long-options``.
* ``recalled(name, answer)``: the answer writes the name, or a dotted name's tail that still looks like an
  identifier (``secure_filename`` for ``werkzeug.utils.secure_filename``; ``abort(`` for ``flask.abort(``).
* ``api_recall``: the share of the reference's names an answer recalls.
* ``rouge_l``: ROUGE-L F-measure against the reference, citation markers removed (tools/evaluation).

The rules are deliberately simple and are the same for every answer compared, so differences are fair even
where a rule misses a name (a plain-word fixture such as ``recwarn``).
"""

from __future__ import annotations

import re

from evorag.tools.evaluation import rouge

_CANDIDATE = re.compile(r"(?<![\w.-])(?:--[A-Za-z][\w-]*|@?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\()?)")
_CITATION = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")
_NOT_NAMES = frozenset({"e.g", "i.e", "etc"})


def _specific(name: str) -> bool:
    """Looks like an identifier on its own: dotted, with an underscore, or CamelCase with two capitals."""
    return "." in name or "_" in name or sum(char.isupper() for char in name) >= 2 and any(
        char.islower() for char in name)


def api_names(reference: str) -> list[str]:
    names: dict[str, None] = {}
    for match in _CANDIDATE.finditer(reference):
        token = match.group(0).lstrip("@")
        called = token.endswith("(")
        name = token.rstrip("(")
        if name.lower() in _NOT_NAMES or len(name) < 2:
            continue
        if name.startswith("--") or called or _specific(name):
            names.setdefault(name + ("(" if called and not _specific(name) else ""), None)
    return list(names)


def _written(text: str, answer: str) -> bool:
    tail = r"(?![\w-])" if not text.endswith("(") else ""
    return re.search(rf"(?<![\w.-]){re.escape(text)}{tail}", answer) is not None


def recalled(name: str, answer: str) -> bool:
    if _written(name, answer):
        return True
    called = name.endswith("(")
    parts = name.rstrip("(").split(".")
    for start in range(1, len(parts)):
        tail = ".".join(parts[start:])
        if _specific(tail) and _written(tail, answer):
            return True
        if _written(tail + "(", answer):  # flask.abort -> abort(401)
            return True
    return called and _written(name, answer)


def api_recall(reference: str, answer: str) -> float | None:
    names = api_names(reference)
    if not names:
        return None
    return sum(recalled(name, answer) for name in names) / len(names)


def rouge_l(reference: str, answer: str) -> float:
    return rouge(_CITATION.sub("", answer), reference, "reference").rougeL.fmeasure
