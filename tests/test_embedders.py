"""The bundled local embedders: a query takes a shorter path than a batch of documents, with the same vector."""

from __future__ import annotations

import numpy as np
import pytest
from evorag.tools.embedding._local import OnnxInt8Embedder, SentenceTransformerEmbedder

QUERIES = [
    "how do I set a timeout?",
    "x",
    "Ünïcödé query with émojis 🚀 and code: `requests.get(url, timeout=5)`",
    "word " * 600,  # longer than the model's 256 tokens: truncated the same way
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("path", ["embed_query", "_embed_query_with_torch"])  # numpy, and its torch fallback
def test_torch_query_vector_equals_the_document_vector(torch_embedder, query: str, path: str) -> None:
    fast = getattr(torch_embedder, path)(query)
    batch = torch_embedder.embed_documents([query])[0]
    assert fast.dtype == np.float32 and fast.shape == (torch_embedder.dim,)
    assert np.allclose(fast, batch, atol=1e-5), float(np.abs(fast - batch).max())
    assert np.linalg.norm(fast) == pytest.approx(1.0, abs=1e-5)


def test_onnx_query_vector_equals_the_document_vector() -> None:
    embedder = OnnxInt8Embedder()
    for query in QUERIES:
        assert np.allclose(embedder.embed_query(query), embedder.embed_documents([query])[0], atol=1e-6)
