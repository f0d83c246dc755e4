"""The shared fenced-code-block reader (evorag.tools.markdown_blocks) follows CommonMark's fence rules, and the
answerer's units and the evaluator's prose/code split both read code through it."""

from __future__ import annotations

from evorag.tools.answering._units import passage_units
from evorag.tools.evaluation._text import split_code_blocks
from evorag.tools.markdown_blocks import CodeBlock, fenced_segments


def segments(markdown: str) -> list[str | tuple[str, str, bool]]:
    return [(s.language, s.code, s.closed) if isinstance(s, CodeBlock) else s
            for s in fenced_segments(markdown.splitlines())]


def test_lines_outside_blocks_pass_through_and_a_block_is_one_segment() -> None:
    assert segments("Intro.\n```Python title=x\nprint(1)\n\nprint(2)\n```\nAfter.") == [
        "Intro.", ("python", "print(1)\n\nprint(2)", True), "After."]


def test_a_block_closes_only_on_the_same_character_at_least_as_long() -> None:
    markdown = "````md\n```\ninner\n```\n~~~~\n`````\nafter"
    assert segments(markdown) == [("md", "```\ninner\n```\n~~~~", True), "after"]


def test_a_closing_fence_with_text_after_it_does_not_close() -> None:
    assert segments("~~~\na\n~~~ not a close\n~~~") == [("", "a\n~~~ not a close", True)]


def test_an_unclosed_block_runs_to_the_end_and_is_marked_open() -> None:
    assert segments("text\n```sh\necho cut by a budget") == ["text", ("sh", "echo cut by a budget", False)]


def test_inline_code_and_deeply_indented_fences_are_not_blocks() -> None:
    markdown = "```not`a fence```\n    ```\nindented code\n    ```"
    assert segments(markdown) == markdown.splitlines()


def test_answer_units_and_evaluator_read_the_same_blocks() -> None:
    markdown = "Run this first command.\n\n```python\nx = 1\n```\n\n~~~\nraw\n"
    _, blocks = split_code_blocks(markdown)
    code_units = [unit for unit in passage_units(1, markdown) if unit.is_code]
    assert [(b.language, b.code, b.closed) for b in blocks] == [("python", "x = 1", True), ("", "raw", False)]
    assert [(u.language, u.text, u.closed) for u in code_units] == [(b.language, b.code, b.closed) for b in blocks]
