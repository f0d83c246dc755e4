"""Questions that ask evorag to transform input they give, which no deployed tool does and the docs did not answer,
are a missing capability (kind ``question``) and become a tool proposal. Doc questions about transformations are
not. The real local embedder groups the requests; the real usage log and proposal store carry them."""

from __future__ import annotations

import pytest
from evorag.tools.transformation_requests import tool_does, transformation_ask
from evorag.tools.usage_analysis import analyse
from evorag.tools.usage_log import QueryRecord

from evorag.service import Evorag

NOW = 1_765_000_000.0
DAY = 86_400.0

# Asked of evorag, with the input given in the question.
TRANSFORMATIONS = [
    ("Convert this YAML to JSON: name: demo\nversion: 2", "convert", ("yaml", "json")),
    ("can you convert this yaml into json?\nservices:\n  web: {image: nginx}", "convert", ("yaml", "json")),
    ("Please format this SQL: select a,b from t where x=1", "format", ("sql",)),
    ("evorag, count the words in: the quick brown fox", "count", ("word",)),
    ('Extract the email addresses from "mail bob@example.com or ann@example.org"', "extract", ("email", "address")),
    ('Validate this JSON against the schema {"type": "object"}', "validate", ("json", "schema")),
    ("Could you please translate 'bonjour le monde' into English", "translate", ("english",)),
    ("Decode this base64: aGVsbG8gd29ybGQ=", "decode", ("base64",)),
    ("Minify ```body { color: red }```", "minify", ()),
]
# Questions about the docs, some phrased as commands or naming code: none asks evorag to transform given input.
DOC_QUESTIONS = [
    "How do I convert a Flask response to JSON?",
    "How can I format dates in Jinja templates?",
    "What does validate() do in pydantic?",
    "Convert a Flask response to JSON",
    "Convert `datetime.now()` to a string in Python?",
    "Can you explain how to count rows in SQLAlchemy?",
    "count rows sqlalchemy",
    "Extract: which function extracts links from a page?",
    "Is there a way to translate templates with gettext?",
    "Format string syntax in Python 3.12",
    "Show me how to parse `argv` with argparse",
    "Translate `gettext` messages in Django",
    "Why does json.dumps fail to encode a datetime?",
    "Should I validate settings with pydantic or attrs?",
]


@pytest.fixture(scope="module")
def embed():
    from evorag.tools.embedding import create_embedder

    from evorag.settings import load_settings

    return create_embedder(load_settings()).embed_documents


@pytest.mark.parametrize(("question", "verb", "terms"), TRANSFORMATIONS)
def test_a_transformation_asked_of_evorag_is_recognised(question: str, verb: str, terms: tuple) -> None:
    ask = transformation_ask(question)
    assert ask is not None and (ask.verb, ask.terms) == (verb, terms)
    # The instruction never carries the input the question gave.
    assert not any(data in ask.instruction for data in ("demo", "nginx", "select", "fox", "bob@", "bonjour", "aGVs"))


@pytest.mark.parametrize("question", DOC_QUESTIONS)
def test_a_question_about_the_docs_is_not_a_transformation(question: str) -> None:
    assert transformation_ask(question) is None


def test_a_tool_that_does_it_already_is_found_by_its_verb_and_terms() -> None:
    tools = [("word_count", "Count the words in a text"), ("csv_to_json", "Convert CSV text to JSON")]
    assert tool_does(transformation_ask("count the words in: a b c"), tools) == "word_count"
    assert tool_does(transformation_ask("Transform this CSV into JSON: a,b\n1,2"), tools) == "csv_to_json"
    assert tool_does(transformation_ask("Convert this YAML to JSON: a: 1"), tools) is None  # YAML: no tool
    assert tool_does(transformation_ask("count the lines in: a\nb"), tools) is None


def _ask(text: str, hours: float, *, not_found: bool = True, principal: str = "p") -> QueryRecord:
    return QueryRecord(ts=NOW - DAY + 3600 * hours, kind="ask", interface="mcp", principal=principal, query=text,
                       not_found=not_found, latency_ms=10.0, id=int(hours * 100))


def test_unanswered_transformations_no_tool_does_are_missing_capabilities(embed) -> None:
    queries = [
        _ask("Convert this YAML to JSON: name: demo", 1, principal="a"),
        _ask("can you convert this yaml into json?\nkey: value", 2, principal="b"),
        _ask("convert yaml to json: [1, 2]", 3, principal="c"),
        _ask("Convert this YAML to JSON: x: 1", 4, principal="a", not_found=False),  # answered once
        _ask("count the words in: one two three", 5),  # a deployed tool does it
        *[_ask(question, 6 + i) for i, question in enumerate(DOC_QUESTIONS)],  # unanswered doc questions
        QueryRecord(ts=NOW - DAY + 3600 * 30, kind="search", interface="cli", principal="d",
                    query="decode this base64: aGVsbG8=", not_found=True, id=999),  # a search asks nothing of evorag
    ]
    analysis = analyse(queries, [], [], embed=embed, since=NOW - DAY, until=NOW + DAY,
                       tools=[("word_count", "Count the words in a text")])
    [missing] = [m for m in analysis.missing_capabilities if m.kind == "question"]
    assert missing.label.startswith("convert") and "yaml" in missing.label and "json" in missing.label
    assert (missing.count, missing.principals) == (3, 3) and missing.impact == pytest.approx(3 / 4)
    assert missing.score == pytest.approx(3 * 0.75) and len(missing.evidence) == 3
    # Without the tool, the word count is missing too, in a group of its own.
    without = analyse(queries, [], [], embed=embed, since=NOW - DAY, until=NOW + DAY)
    assert sorted(m.label for m in without.missing_capabilities if m.kind == "question") == sorted([
        "count the words in", missing.label])


def test_the_missing_capability_becomes_a_tool_proposal_without_the_users_data(evorag_home) -> None:
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        log = rag.parts.usage_log
        for i, question in enumerate(["Convert this YAML to JSON: password: hunter2",
                                      "can you convert this yaml into json?\nname: demo",
                                      "Convert this YAML to JSON: key: 1"]):
            log.record_query(kind="ask", via="mcp", principal=f"user{i}", query=question, not_found=True)
        for question in DOC_QUESTIONS[:4]:
            log.record_query(kind="ask", via="cli", principal="doc-reader", query=question, not_found=True)
        made = rag.make_proposals(topics=[], packages=False)
        [proposal] = [p for p in made if p.kind == "tool"]
        assert "yaml" in proposal.topic and "json" in proposal.topic
        assert "convert this yaml to json" in proposal.request and "hunter2" not in proposal.request
        assert "demo" not in proposal.request and proposal.score == pytest.approx(3.0)
        assert rag.make_proposals(topics=[], packages=False) == []  # made once
        rag.decide_approval(proposal.approval_id, approve=True)
        request = rag.queue_request(rag.get_proposal(proposal.id).request_id)
        assert (request.kind, request.origin, request.payload["request"]) == ("evolve", "proposal", proposal.request)
        rag.cancel_request(request.id)
