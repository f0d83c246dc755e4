"""What changed between two crawls of a source version: pages added, removed and changed, and for a changed page
the sections (heading paths) whose text changed, each with a short unified-diff excerpt.

The indexer captures one entry per page it writes or removes (``page_change``, ``removed_page``), reading the
page's previous text from its old chunks in the store before they are deleted, so nothing beyond the index is
kept. A page's text is rebuilt from its text chunks (they hold every heading, paragraph and code block in order;
code chunks are copies and are left out) and split at its headings, outside code blocks.

The catalog merges the entries into the open change report of their source and version (``merge``), in the
transaction that commits the pages. Sizes are capped so a report stays small whatever the site does: at most
``MAX_PAGES_LISTED`` pages per report (more are counted in ``omitted``), ``MAX_SECTIONS_PER_PAGE`` sections per
page, diff excerpts of ``MAX_DIFF_LINES`` lines and ``MAX_DIFF_CHARS`` characters, for the first
``MAX_PAGES_WITH_DIFFS`` changed pages (later ones list their changed sections without excerpts).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from evorag.errors import UserError

MAX_PAGES_LISTED = 2000
MAX_SECTIONS_PER_PAGE = 12
MAX_DIFF_LINES = 16
MAX_DIFF_CHARS = 1200
MAX_DIFF_LINE_CHARS = 240
MAX_PAGES_WITH_DIFFS = 200

CHANGES = ("added", "changed", "removed")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


# Capturing changes (the indexer)
def page_change(store: Any, *, source: str, version: str | None, url: str, title: str, old: Any,
                new_hash: str, new_chunks: Sequence[Any]) -> dict | None:
    """The change entry of one page about to be (re)written, or None when its content did not change.

    ``old`` is the page's catalog record before this write (None for a new page); ``new_chunks`` its new chunks.
    Call it before the old chunks are deleted: they are the page's previous text.
    """
    entry = {"source": source, "version": version, "url": url, "title": title}
    if old is None or not old.indexed_hash:
        return {**entry, "change": "added"}
    if old.indexed_hash == new_hash:
        return None
    previous = [chunk for chunk in store.get_page_chunks(url)
                if chunk.source == source and chunk.version == version and chunk.content_hash == old.indexed_hash]
    if not previous and old.chunk_count:
        return {**entry, "change": "changed", "sections": None}  # the old text is gone: sections unknown
    sections, omitted = diff_sections(page_text(previous), page_text(new_chunks), title=title)
    return {**entry, "change": "changed", "sections": sections, "sections_omitted": omitted}


def removed_page(*, source: str, version: str | None, url: str, old: Any) -> dict:
    return {"source": source, "version": version, "url": url, "title": getattr(old, "title", "") or "",
            "change": "removed"}


def page_text(chunks: Iterable[Any]) -> str:
    """A page's Markdown as its text chunks hold it, in page order."""
    texts = sorted((chunk for chunk in chunks if chunk.kind == "text"), key=lambda chunk: chunk.position)
    return "\n\n".join(chunk.text for chunk in texts)


def sections_of(markdown: str, *, title: str = "") -> dict[str, tuple[list[str], str]]:
    """``{key: (heading path, text)}`` in page order. Text before the first heading belongs to the page title;
    a heading path seen twice gets `` (2)`` in its key. Blank lines are left out of the text."""
    found: dict[str, tuple[list[str], str]] = {}
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence: str | None = None

    def close() -> None:
        path = [heading for _, heading in stack] or [title or "(top of page)"]
        text = "\n".join(line.rstrip() for line in lines if line.strip())
        if text or stack:
            key, n = " > ".join(path), 2
            while key in found:
                key, n = f"{' > '.join(path)} ({n})", n + 1
            found[key] = (path, text)
        lines.clear()

    for line in markdown.splitlines():
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)[0] * 3
            in_fence = None if in_fence and line.strip().startswith(in_fence) else (in_fence or marker)
            lines.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            close()
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip()))
            continue
        lines.append(line)
    close()
    return found


def diff_sections(old_markdown: str, new_markdown: str, *, title: str = "") -> tuple[list[dict], int]:
    """The sections whose text differs (changed, added or removed), in page order, each with a diff excerpt;
    and how many more changed sections were left out (``MAX_SECTIONS_PER_PAGE``)."""
    old = sections_of(old_markdown, title=title)
    new = sections_of(new_markdown, title=title)
    changed: list[dict] = []
    for key in [*new, *(key for key in old if key not in new)]:
        before, after = old.get(key), new.get(key)
        if before is not None and after is not None and before[1] == after[1]:
            continue
        change = "changed" if before is not None and after is not None else "added" if after is not None else "removed"
        path = (after or before)[0]  # type: ignore[index]
        changed.append({"path": path, "change": change,
                        "diff": diff_excerpt(before[1] if before else "", after[1] if after else "")})
    return changed[:MAX_SECTIONS_PER_PAGE], max(0, len(changed) - MAX_SECTIONS_PER_PAGE)


def diff_excerpt(before: str, after: str) -> str:
    """A unified diff of two texts without its file headers, capped in lines and characters."""
    lines = [line[:MAX_DIFF_LINE_CHARS] + ("…" if len(line) > MAX_DIFF_LINE_CHARS else "")
             for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)][2:]
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) >= MAX_DIFF_LINES or size + len(line) + 1 > MAX_DIFF_CHARS:
            kept.append(f"… ({len(lines) - len(kept)} more diff lines)")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


# Keeping them (the catalog)
def merge(details: dict, entries: Sequence[dict]) -> dict:
    """Fold page entries into a report's details (``{"pages": {url: entry}, "omitted": {change: n}}``).

    A page seen twice in one report (a crawl resumed after a crash) keeps one entry: added then changed stays
    added, added then removed disappears, removed then added is changed (sections unknown), changed then
    removed is removed, changed twice keeps the newest text of each section.
    """
    pages: dict[str, dict] = dict(details.get("pages", {}))
    omitted: dict[str, int] = dict(details.get("omitted", {}))
    with_diffs = sum(1 for page in pages.values() if _has_diffs(page))
    for entry in entries:
        url, change = entry["url"], entry["change"]
        new = {"change": change, "title": entry.get("title", "")}
        if change == "changed":
            new["sections"] = entry.get("sections")
            new["sections_omitted"] = entry.get("sections_omitted", 0)
        before = pages.get(url)
        if before is not None:
            with_diffs -= _has_diffs(before)
            merged = _merge_page(before, new)
            if merged is None:
                del pages[url]
                continue
            new = merged
        elif len(pages) >= MAX_PAGES_LISTED:
            omitted[change] = omitted.get(change, 0) + 1
            continue
        if _has_diffs(new):
            if with_diffs >= MAX_PAGES_WITH_DIFFS:
                new["sections"] = [{**section, "diff": ""} for section in new["sections"]]
            else:
                with_diffs += 1
        pages[url] = new
    return {"pages": pages, "omitted": omitted}


def _has_diffs(page: dict) -> bool:
    return any(section.get("diff") for section in page.get("sections") or ())


def _merge_page(before: dict, after: dict) -> dict | None:
    first, then = before["change"], after["change"]
    if first == "added":
        return None if then == "removed" else {**after, "change": "added", "sections": None}
    if first == "removed":
        return after if then == "removed" else {"change": "changed", "title": after["title"], "sections": None,
                                                 "sections_omitted": 0}
    if then != "changed" or before.get("sections") is None or after.get("sections") is None:
        return after
    by_path = {tuple(s["path"]): s for s in before["sections"]}
    by_path.update({tuple(s["path"]): s for s in after["sections"]})
    sections = list(by_path.values())
    return {**after, "sections": sections[:MAX_SECTIONS_PER_PAGE],
            "sections_omitted": after.get("sections_omitted", 0) + max(0, len(sections) - MAX_SECTIONS_PER_PAGE)}


def details_of(pages: Sequence[dict], omitted: dict) -> dict:
    """The stored form of a report's ``listing`` (an imported report)."""
    return {"pages": {page["url"]: {key: value for key, value in page.items() if key != "url"} for page in pages},
            "omitted": {change: int(omitted.get(change, 0)) for change in CHANGES if omitted.get(change)}}


def listing(details: dict) -> list[dict]:
    """A report's pages as a list: added, changed, removed, each by URL. Added pages carry no sections."""
    pages = details.get("pages", {})
    items = []
    for url, page in pages.items():
        item = {"url": url, "change": page["change"], "title": page.get("title", "")}
        if page["change"] == "changed":
            item["sections"] = page.get("sections")
            if page.get("sections_omitted"):
                item["sections_omitted"] = page["sections_omitted"]
        items.append(item)
    return sorted(items, key=lambda item: (CHANGES.index(item["change"]), item["url"]))


_RELATIVE = re.compile(r"^(\d{1,6})\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: float) -> float:
    """A point in time from ``2024-05-01`` (midnight UTC), an ISO 8601 date and time (UTC unless it says
    otherwise), or a span back from ``now`` (``30m``, ``12h``, ``7d``, ``2w``). Raises UserError otherwise."""
    value = (text or "").strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"cannot read {text!r} as a date",
                        hint="use a date such as 2024-05-01, a time such as 2024-05-01T12:00Z, or a span such "
                        "as 7d, 12h, 2w") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
