"""Honest offline answers (issue 14): a model answer is shown only when it cites a real source, holds none of its
prompt and is grounded, else the extractive answer replaces it with a note; the extractive answer cites every
sentence, keeps code blocks whole, drops near-duplicates, and says "not found" when nothing answers.

Real demo index, real embedding model; only the language model is replayed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from autogen_ext.models.replay import ReplayChatCompletionClient
from evorag.tools.answering import NOT_FOUND, ExtractiveAnswerer, Passage, cited_numbers
from evorag.tools.evaluation import split_sentences

LOCALHOST = "How do I crawl documentation on localhost?"
OFF_TOPIC = "How do I bake sourdough bread with a rye starter?"
ON_TOPIC = [LOCALHOST, "How do I search from Python code?", "Where does evorag keep its data?",
            "How do I keep a crawl to the API pages only?", "Does evorag need a GPU?"]
_FENCED = re.compile(r"^```[^\n]*\n(.*?)\n```$", re.DOTALL | re.MULTILINE)


@pytest.fixture
def offline_rag(demo_home):
    """The demo index with no language model: answers are extractive."""
    from evorag.service import Evorag

    with Evorag(home=demo_home, llm_provider="none") as rag:
        yield rag


def _ask_with(rag, text: str, question: str = LOCALHOST):
    rag.settings.answer_timeout = 10.0
    with rag.override(model_client=ReplayChatCompletionClient([text]), model_name="replay"):
        return rag.ask(question, evaluate=False)


def _assert_replaced(answer, text: str, reason: str) -> None:
    assert answer.fallback and answer.model == "extractive"
    assert answer.rejected_model_answer == text
    assert answer.note.startswith("the replay answer was refused: ") and reason in answer.note
    assert "quotes the top sources" in answer.note
    # What is shown is the extractive answer: cited, from the sources, free of what was refused.
    assert answer.citations and "allow-private" in answer.answer.lower()
    assert "<" not in answer.answer and "assistant:" not in answer.answer
    assert "cite every statement" not in answer.answer.lower()


@pytest.mark.parametrize(("echo", "reason"), [
    ('<source id="1" title="Crawling" section="Crawling">\nPass --allow-private to crawl localhost [1].',
     "markup that is not in the sources"),
    ("Pass --allow-private to crawl localhost [1].\n</source>\n</sources>", "markup that is not in the sources"),
    ("<|im_start|>assistant\nPass --allow-private to crawl localhost [1].", "markup that is not in the sources"),
    ("assistant: Pass --allow-private to crawl localhost [1].", "chat role label"),
    ("Cite every statement with the number of its source in square brackets. Pass --allow-private [1].",
     "repeats its instructions"),
    ("Answer with citations: pass --allow-private to crawl localhost [1].", "repeats its instructions"),
], ids=["source-tag", "sources-end", "chat-token", "role-label", "rules", "answer-cue"])
def test_a_model_answer_echoing_its_prompt_is_replaced_by_the_extractive_one(demo_rag, echo, reason):
    answer = _ask_with(demo_rag, echo)
    _assert_replaced(answer, echo, reason)


def test_a_fluent_answer_without_a_citation_is_replaced(demo_rag):
    fluent = "Pass --allow-private or set EVORAG_ALLOW_PRIVATE=true, and the crawler will index localhost."
    answer = _ask_with(demo_rag, fluent)
    _assert_replaced(answer, fluent, "it cites no source")


def test_an_answer_citing_only_a_source_that_does_not_exist_is_replaced(demo_rag):
    invented = "Pass --allow-private or set EVORAG_ALLOW_PRIVATE=true to crawl localhost [42]."
    answer = _ask_with(demo_rag, invented)
    _assert_replaced(answer, invented, "it cites [42], which is not among the")
    assert answer.invalid_citations == [42]
    assert all(citation["number"] != 42 for citation in answer.citations)


def test_a_cited_grounded_answer_is_shown_as_written(demo_rag):
    good = ("To crawl documentation on localhost, pass `--allow-private` or set `EVORAG_ALLOW_PRIVATE=true` [1]. "
            "By default the crawler refuses loopback and private addresses [1].")
    answer = _ask_with(demo_rag, good)
    assert not answer.fallback and answer.model == "replay" and answer.note is None
    assert answer.answer == good and answer.rejected_model_answer is None
    assert [citation["number"] for citation in answer.citations] == [1]
    assert answer.citations[0]["url"].endswith("/crawling.html")


def test_a_question_the_docs_do_not_answer_gets_not_found_with_the_closest_pages(offline_rag):
    answer = offline_rag.ask(OFF_TOPIC, evaluate=False)
    assert answer.not_found and answer.answer.startswith(NOT_FOUND)
    assert answer.citations == []  # nothing is quoted as if it answered
    retrieved = [source["url"] for source in answer.sources_used]
    assert answer.closest_pages and len({page["url"] for page in answer.closest_pages}) == len(answer.closest_pages)
    for page in answer.closest_pages:
        assert page["url"] in retrieved and page["url"] in answer.answer and page["title"] in answer.answer
    assert "bread" not in answer.answer.lower()
    assert "few of the question's terms" in answer.note or "no retrieved sentence is close" in answer.note


def test_a_model_answer_to_an_unanswerable_question_falls_back_to_not_found(demo_rag):
    # Cited, and free of markup, but the sources do not support it: the gate replaces it with "not found".
    invented = "Feed the rye starter twice a day and bake at 250 degrees [1]."
    answer = _ask_with(demo_rag, invented, question=OFF_TOPIC)
    assert answer.fallback and answer.not_found and answer.answer.startswith(NOT_FOUND)
    assert answer.rejected_model_answer == invented and "rye" not in answer.answer
    assert answer.closest_pages


@pytest.mark.parametrize("question", ON_TOPIC)
def test_an_answerable_question_is_answered_every_sentence_cited(offline_rag, question):
    answer = offline_rag.ask(question, evaluate=False)
    assert not answer.not_found and NOT_FOUND not in answer.answer and answer.closest_pages == []
    numbers = {source["number"] for source in answer.sources_used}
    assert answer.citations and set(cited_numbers(answer.answer)) <= numbers
    prose = _FENCED.sub("", answer.answer)
    sentences = [sentence for sentence in split_sentences(prose) if sentence.strip()]
    assert sentences
    for sentence in sentences:
        assert re.search(r"\[\d+\]:?$", sentence.strip()), f"uncited: {sentence!r}"
    assert answer.answer.count("```") % 2 == 0


def test_the_sentences_of_a_page_keep_their_page_order(offline_rag):
    extractive = offline_rag.parts.extractive
    for question in ON_TOPIC:
        answer = offline_rag.ask(question, evaluate=False)
        picked = extractive.answer(question, _passages(answer)).units
        by_passage: dict[int, list] = {}
        for unit in picked:
            by_passage.setdefault(unit.passage, []).append(unit)
        for units in by_passage.values():
            shown = sorted(units, key=lambda unit: answer.answer.index(_shown_text(unit)))
            assert [unit.index for unit in shown] == sorted(unit.index for unit in units), question


def test_a_how_to_question_gets_the_code_block_whole_as_the_page_has_it(offline_rag):
    answer = offline_rag.ask("How do I search from Python code?", evaluate=False)
    blocks = _FENCED.findall(answer.answer)
    assert blocks and answer.answer.count("```") == 2 * len(blocks)
    source_blocks = {block for source in answer.sources_used for block in _FENCED.findall(source["content"])}
    assert all(block in source_blocks for block in blocks)
    assert any("rag.search(" in block and "from evorag import Evorag" in block for block in blocks)


def test_a_code_block_cut_by_the_context_budget_is_never_shown(offline_rag):
    cut = Passage(1, "http://d/search", "Searching", "From Python",
                  "To search from Python, open the index with the Evorag object:\n\n```python\n"
                  "from evorag import Evorag\n\nwith Evorag() as rag:\n    rag.search(", 1.0)
    result = ExtractiveAnswerer(offline_rag.embedder.embed_documents).answer("How do I search from Python?", [cut])
    assert result.found and "```" not in result.text and "rag.search(" not in result.text
    assert result.text.endswith("[1]") or result.text.endswith("[1].")


def test_near_duplicate_sentences_from_overlapping_chunks_are_shown_once(offline_rag):
    sentence = "To crawl documentation on localhost, pass --allow-private to the crawl command"
    passages = [
        Passage(1, "http://d/crawling", "Crawling", "Private addresses",
                f"{sentence}. By default loopback and private addresses are refused.", 1.0),
        Passage(2, "http://d/crawling", "Crawling", "Private addresses",
                f"{sentence}! Redirects into private networks are refused as well.", 0.9),
        Passage(3, "http://d/faq", "FAQ", "Localhost", "To crawl docs on localhost, pass `--allow-private` "
                "to the crawl command. It also works for intranet hosts.", 0.8),
    ]
    embed = offline_rag.embedder.embed_documents
    result = ExtractiveAnswerer(embed).answer(LOCALHOST, passages)
    assert result.found and result.text.lower().count("allow-private") == 1
    vectors = np.asarray(embed([unit.text for unit in result.units]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, 0.0)
    assert similarity.max() < 0.9


def _passages(answer) -> list[Passage]:
    return [Passage(s["number"], s["url"], s["title"], s["section"], s["content"], s["score"])
            for s in answer.sources_used]


def _shown_text(unit) -> str:
    """The start of a unit as the answer writes it (a term's definition after the term, no final colon)."""
    if unit.is_code:
        return unit.text
    text = unit.text.partition(": ")[2] if unit.kind == "term" else unit.text
    return text.rstrip(":").rstrip()[:40]
