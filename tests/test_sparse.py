"""BM25 sparse encoding: tokens, stable term ids and the BM25 weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from evorag.tools.sparse import Bm25Encoder, SparseVector, encode_document, encode_query, term_id, tokenize


def test_words_are_lowercased_stemmed_and_stopwords_dropped() -> None:
    assert tokenize("How do I configure the Running servers?") == ["configur", "run", "server"]


def test_identifiers_are_kept_whole_and_split_into_parts() -> None:
    assert tokenize("tinyhttp.get(url)") == ["tinyhttp.get", "tinyhttp", "get", "url"]
    assert tokenize("read_file") == ["read_file", "read", "file"]
    assert tokenize("getElementById") == ["getelementbyid", "get", "element", "id"]
    assert tokenize("std::io::Read") == ["std::io::read", "std", "io", "read"]
    assert tokenize("__init__") == ["__init__", "init"]
    assert tokenize("kebab-case-name") == ["kebab-case-name", "kebab", "case", "name"]


def test_acronyms_numbers_and_unicode_survive() -> None:
    assert tokenize("HTTPServer IL-6 p53") == ["httpserver", "il-6", "il", "p53"]
    assert tokenize("naïve café") == ["naïv", "café"]
    assert tokenize("") == []
    assert tokenize("a I ... !!") == []


def test_term_ids_are_stable_32_bit_crc32() -> None:
    # Fixed values: a change here silently invalidates every index built before it.
    assert term_id("tinyhttp.get") == 3572587093
    assert term_id("run") == 1349952704
    script = "from evorag.tools.sparse import term_id; print(term_id('tinyhttp.get'))"
    other_process = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert other_process.stdout.strip() == "3572587093"  # not Python's per-process salted hash


def test_document_weights_follow_bm25_saturation() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.75, avgdl=4.0)
    vector = encoder.encode_document("cache cache cache store")  # dl = 4 = avgdl
    weights = dict(zip(vector.indices, vector.values, strict=True))

    def expected(tf: int, dl: int) -> float:
        return tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / 4.0))

    assert weights[term_id("cach")] == pytest.approx(expected(3, 4))
    assert weights[term_id("store")] == pytest.approx(expected(1, 4))
    assert vector.indices == sorted(vector.indices)


def test_saturation_and_length_normalisation_go_the_right_way() -> None:
    encoder = Bm25Encoder()
    tid = term_id("cach")

    def weight(text: str) -> float:
        vector = encoder.encode_document(text)
        return dict(zip(vector.indices, vector.values, strict=True))[tid]

    once, many = weight("cache"), weight(" ".join(["cache"] * 50))
    assert once < many < encoder.k1 + 1  # more occurrences help, but never past k1 + 1
    assert weight("cache " + "filler " * 300) < weight("cache filler")  # long documents weigh less


def test_query_vectors_weigh_each_unique_term_once() -> None:
    vector = encode_query("cache the cache, then store")
    assert vector == SparseVector(sorted([term_id("cach"), term_id("store")]), [1.0, 1.0])
    assert encode_query("the of") == SparseVector([], [])
    assert encode_document("") == SparseVector([], [])


def test_signature_names_the_parameters_and_bad_ones_are_refused() -> None:
    assert Bm25Encoder(k1=1.5).signature != Bm25Encoder().signature
    for bad in ({"k1": -1.0}, {"b": 1.5}, {"avgdl": 0.0}):
        with pytest.raises(ValueError):
            Bm25Encoder(**bad)
