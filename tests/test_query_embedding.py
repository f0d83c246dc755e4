"""Queries are embedded without torch (numpy on the same weights), with torch's vectors, and a cold
`evorag search` never imports torch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from evorag.tools.embedding import _local
from evorag.tools.embedding._local import MAX_CHARS, SentenceTransformerEmbedder, _minilm_dir
from evorag.tools.embedding._query_encoder import MiniLMQueryEncoder, QueryEncoderUnavailable

TOLERANCE = 1e-4  # on 1 - cosine

LONG_PROSE = " ".join(
    f"Section {n}: the client retries request number {n} with exponential backoff, then gives up." for n in range(60))
LONG_CODE = "\n".join(f"def handler_{n}(request, *, timeout={n}.5):\n    return client.get(request.url, timeout=timeout)"
                      for n in range(40))
TEXTS = {
    "short question": "how do I set a timeout?",
    "one letter": "x",
    "empty": "",
    "mixed case and punctuation": "ConnectionPool.MaxSize — WHY does it fail?!",
    "accents and emoji": "Ünïcödé query with émojis 🚀 and naïve café",
    "cjk and arabic": "如何设置超时 タイムアウトの設定 كيف أضبط المهلة",
    "code": "requests.get(url, timeout=(3.05, 27))  # connect, read\n>>> resp.raise_for_status()",
    "whitespace": "  \t spaced \n\n  out \t ",
    "long prose": LONG_PROSE,
    "long code": LONG_CODE,
}


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def encoder() -> MiniLMQueryEncoder:
    return MiniLMQueryEncoder(_minilm_dir())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_the_tokens_are_torch_s_tokens(embedder, encoder, text: str) -> None:
    tokenizer = embedder._load().tokenizer
    expected = tokenizer(text[:MAX_CHARS], truncation=True, max_length=embedder._load().max_seq_length)["input_ids"]
    assert encoder.token_ids(text[:MAX_CHARS]) == expected


def test_long_texts_are_truncated_at_256_tokens(encoder) -> None:
    for text in (LONG_PROSE, LONG_CODE):
        ids = encoder.token_ids(text)
        assert len(ids) == 256 == encoder.max_tokens
        assert ids[-1] == encoder.token_ids("")[-1]  # ends with [SEP], like torch's truncation


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_query_vector_matches_torch(embedder, text: str) -> None:
    query = embedder.embed_query(text)
    assert embedder._query_encoder is not None, "the numpy query encoder did not load"
    reference = embedder.embed_documents([text])[0]  # sentence-transformers on torch
    assert query.dtype == np.float32 and query.shape == (embedder.dim,)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    assert 1 - _cosine(query, reference) <= TOLERANCE


def test_the_tolerance_tells_close_texts_apart(embedder) -> None:
    # The check above is not loose enough to pass a wrong vector: one changed word moves it further.
    a, b = embedder.embed_query("how do I set a timeout?"), embedder.embed_query("how do I set a timeout")
    assert 1 - _cosine(a, b) > TOLERANCE


def test_a_query_runs_blas_on_one_thread_and_gives_the_threads_back(encoder, monkeypatch) -> None:
    from threadpoolctl import ThreadpoolController

    def blas_threads() -> set[int]:
        return {info["num_threads"] for info in ThreadpoolController().select(user_api="blas").info()}

    before = blas_threads()
    during: list[set[int]] = []
    forward = encoder._encode

    def recording(ids):
        during.append(blas_threads())
        return forward(ids)

    monkeypatch.setattr(encoder, "_encode", recording)
    encoder.embed("how do I set a timeout?")
    assert during == [{1}]
    # Concurrent queries (a server's worker threads) do not leave the process with one BLAS thread.
    short = [TEXTS["short question"], TEXTS["code"], TEXTS["cjk and arabic"]]
    workers = [threading.Thread(target=lambda: [encoder.embed(text) for text in short]) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(during) == 10 and blas_threads() == before


def _model_copy(tmp_path: Path) -> Path:
    """The shipped model folder, with symlinks to its big files, to alter one file of."""
    source = _minilm_dir()
    copy = tmp_path / "model"
    copy.mkdir(parents=True)
    for item in source.iterdir():
        target = copy / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        elif item.name == "model.safetensors":
            target.symlink_to(item)
        else:
            shutil.copy(item, target)
    return copy


def test_a_model_it_cannot_reproduce_is_refused(tmp_path) -> None:
    model = _model_copy(tmp_path)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    with pytest.raises(QueryEncoderUnavailable, match="exact GELU"):
        MiniLMQueryEncoder(model)

    model = _model_copy(tmp_path / "second")
    (model / "model.safetensors").unlink()
    full = (_minilm_dir() / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(full[: len(full) // 2])  # a cut download
    with pytest.raises(QueryEncoderUnavailable, match="does not fit"):
        MiniLMQueryEncoder(model)


def test_falls_back_to_torch_with_a_logged_reason(monkeypatch, caplog) -> None:
    def unavailable(model_dir):
        raise QueryEncoderUnavailable("test: no encoder")

    monkeypatch.setattr(_local, "MiniLMQueryEncoder", unavailable)
    embedder = SentenceTransformerEmbedder()
    with caplog.at_level(logging.WARNING, logger=_local.__name__):
        vector = embedder.embed_query("how do I set a timeout?")
    assert "queries are embedded with torch" in caplog.text and "test: no encoder" in caplog.text
    assert embedder._query_encoder is None
    reference = embedder.embed_documents(["how do I set a timeout?"])[0]
    assert 1 - _cosine(vector, reference) <= TOLERANCE


PROBE = """
import json, sys
from evorag.cli import main
code = main(["search", sys.argv[1], "--json"])
heavy = sorted(name for name in ("torch", "sentence_transformers", "transformers", "qdrant_client", "onnxruntime")
               if name in sys.modules)
print(json.dumps({"exit": code, "heavy": heavy}), file=sys.stderr)
"""


def test_a_cold_cli_search_does_not_import_torch(tmp_path, evorag_home) -> None:
    from evorag.service import Evorag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "timeouts.md").write_text("# Timeouts\n\nSet a timeout on the client with `Client(timeout=5.0)`; "
                                      "a request that takes longer raises `TimeoutError`.\n")
    (docs / "cookies.md").write_text("# Cookies\n\nThe session keeps cookies between requests in a jar.\n")
    with Evorag() as rag:
        assert rag.add_folder(docs, source="docs").pages_indexed == 2

    env = {**os.environ, "EVORAG_HOME": str(evorag_home)}
    done = subprocess.run([sys.executable, "-c", PROBE, "how long before a slow call gives up"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"exit": 0, "heavy": []}, done.stderr[-2000:]
    hits = json.loads(done.stdout)
    assert hits and hits[0]["url"].endswith("timeouts.md")
