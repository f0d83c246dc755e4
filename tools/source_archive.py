"""A source as one file: its chunks, their dense and BM25 vectors, its catalog entries and versions
(``evorag sources export`` / ``evorag sources import``), to share an index without crawling and embedding again.

Format (``format_version`` 1), a gzip-compressed tar whose members are, in this order::

    evorag-source/manifest.json   what the archive holds and how to check it (below)
    evorag-source/catalog.json    the source, its versions (start URL, options, last crawl), its committed pages
                                  (URL, version, title, content hash, ETag, Last-Modified, fetch time, chunk
                                  count) and its change reports
    evorag-source/chunks.jsonl    one chunk per line: {"id": UUID, "payload": the chunk as the store keeps it,
                                  "sparse": {"indices": [...], "values": [...]}} (the BM25 vector as stored)
    evorag-source/dense.npy       the dense vectors, float32, one row per line of chunks.jsonl (NumPy .npy)

``manifest.json``: ``format`` ("evorag-source-export"), ``format_version``, ``evorag_version``, ``created_at``,
``source``, ``versions`` (labels; null for an unversioned source), ``embedding`` (``model``, ``dim``), ``bm25``
(the BM25 encoder signature, ``evorag.tools.sparse``), ``counts`` (versions, pages, chunks) and ``members``
(``bytes`` and ``sha256`` of each other member).

Importing treats the file as untrusted. It is unpacked into a staging directory under the size, member and path
rules of ``evorag.tools.archive_guard`` (only the members above), then checked whole before anything is written:
the format version; the embedding model and dimension and the BM25 signature against the index it goes into
(vectors of another model or encoder would rank wrongly, so that is refused with the model to configure); each
member's size and sha256; every catalog entry and chunk (types, the source and versions the manifest names, each
chunk's page and content hash, the chunk count of each page, and each chunk's id, which must be the one the indexer
derives from its URL, content hash, position, kind, source and version, so no point can land on another
source's); the vectors (shape, finite values, sorted BM25 terms). A refusal is one ``UserError``
(``ConfigError`` for a model mismatch) and leaves the index as it was. Writing follows the indexer's protocol
(pages pending, chunks, pages committed), so a killed import leaves no partial page (``Indexer.recover``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from evorag.tools.archive_guard import ArchiveLimits, extract_tar_gz
from evorag.tools.catalog import Catalog, PageRecord, SourceRecord
from evorag.tools.chunking import chunk_id as make_chunk_id
from evorag.tools.sparse import SparseVector
from evorag.tools.types import Chunk
from evorag.tools.versions import scoped_chunk_id, validate_version_label

from evorag.bounded_json import JSONLimitError, loads_bounded
from evorag.errors import ConfigError, NotFoundError, UserError

FORMAT = "evorag-source-export"
FORMAT_VERSION = 1
ROOT = "evorag-source"
MANIFEST = "manifest.json"
MEMBERS = ("catalog.json", "chunks.jsonl", "dense.npy")
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_URL_CHARS = 8192
BATCH = 256
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
UNCHANGED = "nothing was imported; the index is unchanged"


@dataclass(slots=True)
class VerifiedArchive:
    """An unpacked archive whose every member was checked; ``directory`` holds the members."""

    directory: Path
    manifest: dict
    catalog: dict
    label: str

    @property
    def source(self) -> str:
        return self.manifest["source"]

    @property
    def versions(self) -> list[str | None]:
        return list(self.manifest["versions"])


@dataclass(slots=True)
class _Tally:
    chunks: int = 0
    per_page: dict[tuple[str | None, str], int] = field(default_factory=dict)


# Export
def export_source(dest: Path, *, store: Any, catalog: Catalog, source: SourceRecord, versions: Sequence[str | None],
                  evorag_version: str) -> dict:
    """Write ``versions`` of ``source`` to ``dest`` (a new file); returns the manifest (plus ``path``, ``bytes``).

    The caller holds the writer slot, so no crawl changes the source meanwhile. Raises UserError when ``dest``
    exists, and when the index disagrees with the catalog about a page (re-crawl it, or repair the index).
    """
    dest = Path(dest)
    if dest.exists():
        raise UserError(f"{dest} already exists", hint="choose a new file name for the export")
    info = store.info()
    pages = [record for version in versions for record in catalog.pages(source.name, version).values()
             if record.indexed_hash]
    expected = {(record.version, record.url): record for record in pages}
    total = sum(record.chunk_count for record in pages)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".evorag-export-", dir=dest.parent) as tmp:
        stage = Path(tmp)
        tally = _write_chunks(stage, store, source.name, versions, expected, total, int(info["dim"]))
        for (version, url), record in expected.items():
            if tally.per_page.get((version, url), 0) != record.chunk_count:
                raise UserError(
                    f"the index holds {tally.per_page.get((version, url), 0)} chunks of {url}, the catalog "
                    f"{record.chunk_count}: {source.name} is inconsistent",
                    hint="run `evorag heal` or crawl that version again, then export")
        version_records = [v for v in catalog.versions(source.name) if v.version in versions]
        reports = [report.to_dict() for report in catalog.change_reports(source.name, versions=list(versions))]
        (stage / "catalog.json").write_text(json.dumps({
            "source": {"name": source.name, "start_url": source.start_url, "options": source.options,
                       "created_at": source.created_at, "last_crawl_at": source.last_crawl_at,
                       "last_summary": source.last_summary,
                       "latest": source.latest if source.latest in versions else None},
            "versions": [{"version": v.version, "start_url": v.start_url, "options": v.options,
                          "created_at": v.created_at, "last_crawl_at": v.last_crawl_at,
                          "last_summary": v.last_summary} for v in version_records],
            "pages": [{"url": r.url, "version": r.version, "title": r.title, "indexed_hash": r.indexed_hash,
                       "etag": r.etag, "last_modified": r.last_modified, "fetched_at": r.fetched_at,
                       "chunk_count": r.chunk_count} for r in pages],
            "change_reports": [{key: report[key] for key in ("version", "started_at", "finished_at", "pages",
                                                             "omitted")} for report in reversed(reports)],
        }, ensure_ascii=False), encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "evorag_version": evorag_version,
            "created_at": time.time(),
            "source": source.name,
            "versions": list(versions),
            "embedding": {"model": info["model"], "dim": int(info["dim"])},
            "bm25": store.sparse_signature,
            "counts": {"versions": len(versions), "pages": len(pages), "chunks": tally.chunks},
            "members": {name: {"bytes": (stage / name).stat().st_size, "sha256": _sha256(stage / name)}
                        for name in MEMBERS},
        }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        partial = dest.with_name(dest.name + ".partial")
        try:
            with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
                # The manifest first: a reader learns what it is looking at before the bulk.
                for name in (MANIFEST, *MEMBERS):
                    archive.add(stage / name, arcname=f"{ROOT}/{name}", recursive=False, filter=_plain_member)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
    return {**manifest, "path": str(dest), "bytes": dest.stat().st_size}


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner names, ids or host modes in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _write_chunks(stage: Path, store: Any, source: str, versions: Sequence[str | None],
                  expected: dict[tuple[str | None, str], PageRecord], total: int, dim: int) -> _Tally:
    from evorag.tools.stores import SearchFilter  # loads the Qdrant client, like the store it reads

    tally = _Tally()
    dense = np.lib.format.open_memmap(stage / "dense.npy", mode="w+", dtype=np.float32, shape=(total, dim))
    try:
        with open(stage / "chunks.jsonl", "w", encoding="utf-8") as lines:
            for version in versions:
                for chunk, vector, sparse in store.iter_points(SearchFilter(source=source, version=version)):
                    record = expected.get((chunk.version, chunk.url))
                    if record is None or chunk.content_hash != record.indexed_hash:
                        continue  # a half-written or superseded page version: not part of the source
                    if tally.chunks >= total:
                        raise UserError(f"the index holds more chunks of {source} than the catalog records",
                                        hint="run `evorag heal` or crawl it again, then export")
                    dense[tally.chunks] = np.asarray(vector, dtype=np.float32)
                    lines.write(json.dumps({"id": chunk.id, "payload": chunk.payload(),
                                            "sparse": {"indices": sparse.indices, "values": sparse.values}},
                                           ensure_ascii=False) + "\n")
                    tally.chunks += 1
                    key = (chunk.version, chunk.url)
                    tally.per_page[key] = tally.per_page.get(key, 0) + 1
        dense.flush()
    finally:
        del dense
    return tally


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


# Import: verify
def unpack_and_verify(archive: Path, staging: Path, limits: ArchiveLimits, *, model: str, dim: int,
                      bm25: str) -> VerifiedArchive:
    """Unpack ``archive`` into the empty directory ``staging`` and check all of it (see the module docstring)
    against the index it would go into (``model``, ``dim``, ``bm25``)."""
    label = f"source archive {archive}"
    if not Path(archive).is_file():
        raise NotFoundError(f"no file at {archive}", hint="pass a file written by `evorag sources export`")
    wanted = {(ROOT, name) for name in (MANIFEST, *MEMBERS)}
    extract_tar_gz(Path(archive), staging, limits,
                   lambda parts, is_dir: parts == (ROOT,) if is_dir else parts in wanted,
                   label=label, kind="evorag source export", made_by="`evorag sources export`", unchanged=UNCHANGED)
    directory = staging / ROOT
    manifest = _read_manifest(directory, label)
    _check_compatible(manifest, label, model=model, dim=dim, bm25=bm25)
    for name in MEMBERS:
        path = directory / name
        expected = manifest["members"][name]
        if not path.is_file():
            raise _refuse(label, f"member {name} is missing")
        if path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
            raise _refuse(label, f"member {name} does not match the size and sha256 its manifest records "
                                 "(changed or damaged after export)")
    catalog = _read_catalog(directory / "catalog.json", manifest, label)
    pages = {(page["version"], page["url"]): page for page in catalog["pages"]}
    tally = _check_chunks(directory / "chunks.jsonl", manifest, pages, label)
    for key, page in pages.items():
        if tally.per_page.get(key, 0) != page["chunk_count"]:
            raise _refuse(label, f"page {key[1][:200]} records {page['chunk_count']} chunks but the archive holds "
                                 f"{tally.per_page.get(key, 0)}")
    _check_dense(directory / "dense.npy", tally.chunks, int(manifest["embedding"]["dim"]), label)
    return VerifiedArchive(directory=directory, manifest=manifest, catalog=catalog, label=label)


def _refuse(label: str, reason: str) -> UserError:
    return UserError(f"refusing {label}: {reason}", hint=UNCHANGED)


def _read_manifest(directory: Path, label: str) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise _refuse(label, f"it has no {ROOT}/{MANIFEST} (not an evorag source export)")
    try:
        manifest = loads_bounded(path.read_bytes(), max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_JSON_DEPTH,
                                 what="its manifest")
    except JSONLimitError as exc:
        raise _refuse(label, str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(label, "its manifest does not describe an evorag source export")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _refuse(label, "its manifest has no valid format_version")
    if version > FORMAT_VERSION:
        raise UserError(f"{label} has format version {version}; this evorag reads format version {FORMAT_VERSION}",
                        hint=f"upgrade evorag (it was written by evorag {manifest.get('evorag_version')!s:.40})")
    problems = []
    if not isinstance(manifest.get("source"), str) or not _SOURCE_NAME.match(manifest["source"]):
        problems.append("source")
    versions = manifest.get("versions")
    if (not isinstance(versions, list) or not versions or len(set(map(str, versions))) != len(versions)
            or (None in versions and len(versions) > 1)):
        problems.append("versions")
    else:
        for version_label in versions:
            if version_label is not None:
                try:
                    validate_version_label(version_label if isinstance(version_label, str) else "")
                except UserError:
                    problems.append("versions")
    embedding = manifest.get("embedding")
    if (not isinstance(embedding, dict) or not isinstance(embedding.get("model"), str)
            or not _positive_int(embedding.get("dim"))):
        problems.append("embedding")
    if not isinstance(manifest.get("bm25"), str):
        problems.append("bm25")
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(_count(counts.get(key)) for key in ("versions", "pages", "chunks")):
        problems.append("counts")
    members = manifest.get("members")
    if (not isinstance(members, dict) or set(members) != set(MEMBERS)
            or not all(isinstance(m, dict) and _count(m.get("bytes")) and isinstance(m.get("sha256"), str)
                       and _SHA256.match(m["sha256"]) for m in members.values())):
        problems.append("members")
    if problems:
        raise _refuse(label, f"its manifest has invalid {', '.join(sorted(set(problems)))}")
    return manifest


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_compatible(manifest: dict, label: str, *, model: str, dim: int, bm25: str) -> None:
    theirs, their_dim = manifest["embedding"]["model"], manifest["embedding"]["dim"]
    if theirs == model and their_dim != dim:
        # Configuring "that model" is no advice here: this home already uses it, at another dimension.
        raise ConfigError(
            f"{label} holds {their_dim}-d vectors of embedding model {theirs!r}, but this index holds {dim}-d "
            "vectors of that model",
            hint=f"import it into a home whose embedder makes {their_dim}-d vectors, or crawl the docs here instead")
    if theirs != model:
        raise ConfigError(
            f"{label} holds {their_dim}-d vectors of embedding model {theirs!r}, but this index uses {model!r} "
            f"({dim}-d)",
            hint=f"import it into a home configured for that model ({configure_hint(theirs)}), or crawl the "
            "docs here instead")
    if manifest["bm25"] != bm25:
        raise ConfigError(
            f"{label} holds BM25 vectors of encoder {manifest['bm25']!r}, but this evorag's BM25 encoder is "
            f"{bm25!r}; keyword search would mix the two and rank wrongly",
            hint=f"import it with the evorag version that exported it ({manifest.get('evorag_version')!s:.40}), "
            "or crawl the docs here instead")


def configure_hint(model: str) -> str:
    """The settings that select embedding model ``model`` (as embedders name themselves)."""
    if model == "all-MiniLM-L6-v2":
        return "EVORAG_EMBEDDER=local"
    if model == "all-MiniLM-L6-v2-int8":
        return "EVORAG_EMBEDDER=onnx"
    kind, _, name = model.partition(":")
    if kind in ("openai", "ollama") and name:
        return f"EVORAG_EMBEDDER={kind} and EVORAG_EMBEDDING_MODEL={name}"
    return f"an embedder whose model is named {model!r}"


def _read_catalog(path: Path, manifest: dict, label: str) -> dict:
    try:
        data = loads_bounded(path.read_bytes(), max_bytes=path.stat().st_size, max_depth=MAX_JSON_DEPTH,
                             what="its catalog.json")
    except JSONLimitError as exc:
        raise _refuse(label, str(exc)) from None
    versions = manifest["versions"]
    problems: list[str] = []
    if not isinstance(data, dict):
        raise _refuse(label, "its catalog.json is not an object")
    source = data.get("source")
    if not isinstance(source, dict) or source.get("name") != manifest["source"]:
        problems.append("the source does not match the manifest")
    elif source.get("latest") is not None and source["latest"] not in versions:
        problems.append("the latest marker names a version it does not hold")
    elif not _record_ok(source):
        problems.append("the source record is malformed")
    records = data.get("versions")
    if not isinstance(records, list) or sorted(map(str, (r.get("version") for r in records if isinstance(r, dict)))) \
            != sorted(map(str, versions)) or not all(isinstance(r, dict) for r in records):
        problems.append("its versions do not match the manifest")
    else:
        for record in records:
            if not _record_ok(record):
                problems.append("a version record is malformed")
                break
    pages = data.get("pages")
    seen: set[tuple[str | None, str]] = set()
    if not isinstance(pages, list):
        problems.append("pages is not a list")
        pages = []
    for page in pages:
        if not (isinstance(page, dict) and isinstance(page.get("url"), str) and 0 < len(page["url"]) <= MAX_URL_CHARS
                and page.get("version") in versions and isinstance(page.get("indexed_hash"), str)
                and page["indexed_hash"] and isinstance(page.get("title", ""), str) and _count(page.get("chunk_count"))
                and _optional(page.get("etag"), str) and _optional(page.get("last_modified"), str)
                and _optional(page.get("fetched_at"), (int, float))):
            problems.append("a page entry is malformed")
            break
        key = (page["version"], page["url"])
        if key in seen:
            problems.append(f"page {page['url'][:200]} appears twice")
            break
        seen.add(key)
    if len(pages) != manifest["counts"]["pages"]:
        problems.append(f"it holds {len(pages)} pages, the manifest says {manifest['counts']['pages']}")
    reports = data.get("change_reports", [])
    if not isinstance(reports, list) or not all(
            isinstance(r, dict) and r.get("version") in versions and _optional_time(r.get("started_at"), required=True)
            and _optional_time(r.get("finished_at"))
            and isinstance(r.get("pages", []), list) and isinstance(r.get("omitted", {}), dict)
            and all(key in _CHANGES and _count(value) for key, value in r.get("omitted", {}).items())
            and all(_report_page_ok(p) for p in r.get("pages", [])) for r in reports):
        problems.append("its change reports are malformed")
    if problems:
        raise _refuse(label, f"catalog.json: {problems[0]}")
    return data


_CHANGES = ("added", "changed", "removed")
_REPORT_PAGE_KEYS = {"url", "change", "title", "sections", "sections_omitted"}


def _report_page_ok(page: object) -> bool:
    """A page of a change report in the form ``evorag.tools.changes`` writes, which is how it is read back."""
    if not (isinstance(page, dict) and set(page) <= _REPORT_PAGE_KEYS and isinstance(page.get("url"), str)
            and 0 < len(page["url"]) <= MAX_URL_CHARS and page.get("change") in _CHANGES
            and isinstance(page.get("title", ""), str) and _count(page.get("sections_omitted", 0))):
        return False
    sections = page.get("sections")
    return sections is None or (isinstance(sections, list) and all(
        isinstance(section, dict) and section.get("change") in _CHANGES and isinstance(section.get("path"), list)
        and all(isinstance(part, str) for part in section["path"]) and _optional(section.get("diff"), str)
        for section in sections))


def _record_ok(record: dict) -> bool:
    """A source or version record holds only what the catalog can store and later read back as such (an odd
    type would fail in SQLite halfway through an import, or in the next crawl reading its options)."""
    start_url = record.get("start_url")
    return (_optional(start_url, str) and len(start_url or "") <= MAX_URL_CHARS
            and isinstance(record.get("options", {}), dict) and _optional(record.get("last_summary"), dict)
            and _optional_time(record.get("created_at")) and _optional_time(record.get("last_crawl_at")))


def _optional_time(value: object, *, required: bool = False) -> bool:
    if value is None:
        return not required
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _optional(value: object, kind: type | tuple[type, ...]) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _check_chunks(path: Path, manifest: dict, pages: dict, label: str) -> _Tally:
    tally = _Tally()
    ids: set[str] = set()
    for number, entry in enumerate(_lines(path, label), 1):
        problem = _chunk_problem(entry, manifest, pages, ids)
        if problem:
            raise _refuse(label, f"chunks.jsonl line {number}: {problem}")
        key = (entry["payload"].get("version"), entry["payload"]["url"])
        tally.per_page[key] = tally.per_page.get(key, 0) + 1
        tally.chunks += 1
    if tally.chunks != manifest["counts"]["chunks"]:
        raise _refuse(label, f"it holds {tally.chunks} chunks, the manifest says {manifest['counts']['chunks']}")
    return tally


def _lines(path: Path, label: str) -> Iterator[Any]:
    with open(path, "rb") as handle:
        number = 0
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise _refuse(label, f"chunks.jsonl line {number} is longer than {MAX_LINE_BYTES} bytes")
            try:
                yield loads_bounded(line, max_bytes=MAX_LINE_BYTES, max_depth=MAX_JSON_DEPTH,
                                    what=f"chunks.jsonl line {number}")
            except JSONLimitError as exc:
                raise _refuse(label, str(exc)) from None


_PAYLOAD_TYPES: dict[str, type | tuple[type, ...]] = {
    "url": str, "source": str, "title": str, "heading_path": list, "text": str, "kind": str,
    "position": int, "content_hash": str, "crawled_at": (int, float),
}


def _chunk_problem(entry: object, manifest: dict, pages: dict, ids: set[str]) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("payload"), dict):
        return "not a chunk"
    chunk_id = entry.get("id")
    try:
        if not isinstance(chunk_id, str) or str(uuid.UUID(chunk_id)) != chunk_id:
            return "its id is not a canonical UUID"
    except ValueError:
        return "its id is not a UUID"
    if chunk_id in ids:
        return f"chunk {chunk_id} appears twice"
    ids.add(chunk_id)
    payload = entry["payload"]
    for key, kind in _PAYLOAD_TYPES.items():
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            return f"payload field {key!r} is missing or of the wrong type"
    if payload["kind"] not in ("text", "code") or not all(isinstance(p, str) for p in payload["heading_path"]):
        return "payload kind or heading path is malformed"
    if not _optional(payload.get("language"), str) or not _optional(payload.get("version"), str):
        return "payload field 'language' or 'version' is of the wrong type"
    if payload["source"] != manifest["source"]:
        return f"it belongs to source {payload['source'][:80]!r}, not {manifest['source']!r}"
    # Ids derive from what the chunk is (as the indexer makes them), so an archive cannot aim its points at the
    # ids of another source's chunks and overwrite them.
    if chunk_id != scoped_chunk_id(make_chunk_id(payload["url"], payload["content_hash"], payload["position"],
                                                 payload["kind"]), payload["source"], payload.get("version")):
        return "its id is not the one its URL, content hash, position, kind, source and version give"
    page = pages.get((payload.get("version"), payload["url"]))
    if page is None:
        return f"its page {payload['url'][:200]} ({payload.get('version')}) is not in catalog.json"
    if payload["content_hash"] != page["indexed_hash"]:
        return f"its content hash does not match the catalog's for {payload['url'][:200]}"
    sparse = entry.get("sparse")
    if not isinstance(sparse, dict) or not isinstance(sparse.get("indices"), list) \
            or not isinstance(sparse.get("values"), list) or len(sparse["indices"]) != len(sparse["values"]):
        return "its BM25 vector is malformed"
    previous = -1
    for index in sparse["indices"]:
        if not isinstance(index, int) or isinstance(index, bool) or not previous < index < 2**32:
            return "its BM25 vector's term ids are not sorted, unique uint32 values"
        previous = index
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in sparse["values"]):
        return "its BM25 vector holds values that are not finite numbers"
    return None


def _check_dense(path: Path, rows: int, dim: int, label: str) -> None:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _refuse(label, f"dense.npy is not a readable NumPy array ({str(exc)[:120]})") from None
    if matrix.dtype != np.float32 or matrix.shape != (rows, dim):
        raise _refuse(label, f"dense.npy holds {matrix.dtype} {matrix.shape}, not float32 ({rows}, {dim})")
    for start in range(0, rows, 4096):
        if not np.isfinite(matrix[start:start + 4096]).all():
            raise _refuse(label, "dense.npy holds values that are not finite numbers")
    del matrix


def refuse_foreign_ids(verified: VerifiedArchive, *, store: Any) -> None:
    """Refuse an archive whose chunk ids the index already holds for another source. Chunk ids are scoped by
    source (``scoped_chunk_id``), so this only happens with an archive whose ids were forged to match, or an index
    written before unversioned ids were scoped: writing it would silently take the other source's points."""
    ids: list[str] = []
    for number, entry in enumerate(_lines(verified.directory / "chunks.jsonl", verified.label), 1):
        ids.append(entry["id"])
        if len(ids) == BATCH or number == verified.manifest["counts"]["chunks"]:
            for chunk in store.get_chunks(ids).values():
                if chunk.source != verified.source:
                    raise _refuse(verified.label, f"its chunks of {chunk.url[:200]} are already in the index as "
                                                  f"source {chunk.source[:80]!r}'s (the same page, unversioned); "
                                                  "importing would take them from that source")
            ids = []


# Import: write
def write_verified(verified: VerifiedArchive, *, store: Any, catalog: Catalog) -> dict:
    """Write a verified archive into the index and the catalog (the caller holds the writer slot and has
    removed whatever it replaces). Returns counts."""
    data = verified.catalog
    name = verified.source
    catalog.import_versions(data["source"], data["versions"], data.get("change_reports", []))
    by_version: dict[str | None, list[dict]] = {}
    for page in data["pages"]:
        by_version.setdefault(page["version"], []).append(page)
    for version, pages in by_version.items():
        catalog.begin_pages(name, [(page["url"], page["indexed_hash"]) for page in pages], version=version)
    dense = np.load(verified.directory / "dense.npy", mmap_mode="r", allow_pickle=False)
    try:
        row = 0
        batch: list[tuple[Chunk, SparseVector]] = []
        for entry in _lines(verified.directory / "chunks.jsonl", verified.label):
            batch.append((_chunk(entry), SparseVector(entry["sparse"]["indices"], entry["sparse"]["values"])))
            if len(batch) == BATCH:
                store.upsert([c for c, _ in batch], np.asarray(dense[row:row + BATCH]), [s for _, s in batch])
                row += len(batch)
                batch = []
        if batch:
            store.upsert([c for c, _ in batch], np.asarray(dense[row:row + len(batch)]), [s for _, s in batch])
    finally:
        del dense
    for version, pages in by_version.items():
        catalog.commit_pages([PageRecord(url=page["url"], source=name, title=page.get("title") or "",
                                         indexed_hash=page["indexed_hash"], pending_hash=None, etag=page.get("etag"),
                                         last_modified=page.get("last_modified"), fetched_at=page.get("fetched_at"),
                                         chunk_count=page["chunk_count"], version=version) for page in pages])
    return {"source": name, "versions": verified.versions, "pages": len(data["pages"]),
            "chunks": verified.manifest["counts"]["chunks"]}


def _chunk(entry: dict) -> Chunk:
    payload = entry["payload"]
    return Chunk(id=entry["id"], url=payload["url"], source=payload["source"], title=payload["title"],
                 heading_path=list(payload["heading_path"]), text=payload["text"], kind=payload["kind"],
                 position=payload["position"], content_hash=payload["content_hash"],
                 crawled_at=float(payload["crawled_at"]), language=payload.get("language"),
                 version=payload.get("version"))


def staging_directory(home: Path) -> Path:
    """An empty directory for unpacking an archive, on the home's file system."""
    home.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".import-", dir=home))


def remove_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
