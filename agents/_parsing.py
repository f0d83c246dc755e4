"""Reading model output: JSON objects and named fenced code blocks, tolerant of chatty models."""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```[ \t]*([\w.+-]*)[ \t]*([\w./-]*\.py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> dict | None:
    """The first JSON object in ``text`` (bare or fenced), or None."""
    for match in re.finditer(r"\{", text):
        depth = 0
        for end in range(match.start(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    value = json.loads(text[match.start() : end + 1])
                except ValueError:
                    break
                return value if isinstance(value, dict) else None
    return None


def extract_files(text: str, default: str = "tool.py") -> dict[str, str]:
    """Fenced blocks keyed by the file name written after the language (``python tool.py``).

    An unnamed first block is taken as ``default``; an unnamed second one as ``test_tool.py``.
    """
    files: dict[str, str] = {}
    unnamed = [default, "test_tool.py"]
    for match in _FENCE.finditer(text):
        name = match.group(2) or (match.group(1) if match.group(1).endswith(".py") else None)
        if name is None:
            if not unnamed:
                continue
            name = unnamed.pop(0)
        elif name in unnamed:
            unnamed.remove(name)
        name = name.rsplit("/", 1)[-1]
        if re.fullmatch(r"(tool|test_[a-z0-9_]+)\.py", name):
            files[name] = match.group(3).rstrip() + "\n"
    return files


def slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    name = "_".join(words)[:limit].strip("_") or "tool"
    return name if name[0].isalpha() else f"tool_{name}"
