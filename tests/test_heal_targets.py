"""What a healing description is about: tools, sources and metrics ranked by term overlap."""

from __future__ import annotations

from evorag.teams._heal_targets import about_line, rank_targets

TOOLS = [("word_count", "Count the words of a text."), ("shout_text", "Return the text in upper case."),
         ("celsius_to_fahrenheit", "Convert a temperature.")]
SOURCES = [("flask", "https://flask.palletsprojects.com/"), ("demo", "http://127.0.0.1:8000/index.html")]
METRICS = ["grounding", "rougeL", "ndcg", "overall"]


def _rank(description):
    return rank_targets(description, tools=TOOLS, sources=SOURCES, metrics=METRICS)


def test_a_tool_named_outright_comes_first():
    targets = _rank("shout_text returns wrong case")
    assert targets[0].label() == "tool shout_text" and targets[0].score == 1.0
    assert "tool word_count" not in [t.label() for t in targets]


def test_a_tool_described_in_other_words_is_found():
    targets = _rank("the word counts are off by one")
    assert targets[0].label() == "tool word_count"
    assert about_line(targets[:1]) == "about: tool word_count"


def test_answer_complaints_point_at_the_quality_metrics():
    labels = [t.label() for t in _rank("answers look wrong")]
    assert labels == ["metric grounding", "metric overall"]


def test_a_source_by_name_or_address():
    assert _rank("the flask pages are gone")[0].label() == "source flask"
    assert _rank("pages of palletsprojects vanished")[0].label() == "source flask"


def test_nothing_named_means_checking_everything_and_ranking_is_deterministic():
    assert _rank("routine") == []
    assert about_line([]) == "about: nothing named; checking everything"
    assert _rank("word count and upper case text") == _rank("word count and upper case text")
