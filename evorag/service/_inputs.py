"""Checks of what callers hand the service, shared by every use case: source names and text."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from evorag.errors import UserError

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_source_name(name: str) -> str:
    if not _SOURCE_NAME.match(name or "") or ".." in name:
        raise UserError(
            f"invalid source name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def require_text(value: str, what: str) -> str:
    """Refuse text that is not valid Unicode: bytes the terminal could not decode reach Python's argv as lone
    surrogates (``$'\\xff'``), which no tokenizer or model accepts. Refused rather than replaced: a query
    with U+FFFD in place of what was typed would search for something else."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"the {what} is not valid UTF-8 text",
                        hint="type it again, or set a UTF-8 locale (e.g. LANG=C.UTF-8)") from None
    return value


def default_source_name(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "source").replace(":", "-")
    name = f"{host}-{parts.port}" if parts.port else host
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]
