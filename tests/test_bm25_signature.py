"""An index built by another BM25 encoder: the CLI refuses to mix encodings, and its hint is a way out.

Real crawl of the sphinx fixture site, real local embedder, real Qdrant Edge under EVORAG_HOME.
"""

from __future__ import annotations

import json
from pathlib import Path

from evorag.tools.sparse import DEFAULT_ENCODER, Bm25Encoder
from sitefixtures import serve

from evorag.cli import main
from evorag.service import Evorag

# What a collection built before the BM25 parameters changed has recorded (any other signature would do).
OLD_SIGNATURE = Bm25Encoder(k1=2.0).signature


def meta_path(home: Path) -> Path:
    (path,) = (home / "qdrant" / "collections").glob("evorag-*/meta.json")
    return path


def record_signature(home: Path, signature: str) -> None:
    path = meta_path(home)
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["sparse"] = signature
    path.write_text(json.dumps(meta), encoding="utf-8")


def one_line(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines on a narrow stderr


def test_an_index_of_another_bm25_encoder_is_refused_until_re_indexed(evorag_home: Path, capsys) -> None:
    with serve("sphinx") as server:
        url = server.url("/docs/index.html")
        assert main(["crawl", url, "--allow-private", "--source", "docs", "--json"]) == 0
        record_signature(evorag_home, OLD_SIGNATURE)
        before = meta_path(evorag_home).read_bytes()
        capsys.readouterr()

        assert main(["search", "tinyhttp.get"]) == 2
        error = one_line(capsys.readouterr().err)
        assert OLD_SIGNATURE in error and DEFAULT_ENCODER.signature in error
        assert "evorag sources remove NAME" in error and "evorag crawl URL" in error

        # A crawl is refused before it fetches a page or records the source.
        requests = len(server.requests)
        assert main(["crawl", server.url("/docs/api.html"), "--allow-private", "--source", "more"]) == 2
        assert len(server.requests) == requests
        with Evorag() as rag:
            assert [source.name for source in rag.sources()] == ["docs"]
            assert rag.catalog.pending_pages() == []
        assert meta_path(evorag_home).read_bytes() == before  # the refused calls changed nothing

        # The hint: remove every source, crawl again.
        assert main(["sources", "remove", "docs"]) == 0
        assert main(["crawl", url, "--allow-private", "--source", "docs", "--json"]) == 0
        recorded = json.loads(meta_path(evorag_home).read_text(encoding="utf-8"))["sparse"]
        assert recorded == DEFAULT_ENCODER.signature
        capsys.readouterr()
        assert main(["search", "tinyhttp.get", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)
        assert hits and "tinyhttp.get" in hits[0]["content"]
