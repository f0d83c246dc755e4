from evorag.tools.chunking import chunk_id, chunk_page, embedding_text, parse_blocks

PAGE = """# Client guide

The client talks to servers over HTTP.

## Timeouts

Every request accepts a timeout in seconds. The default is thirty seconds.

```python
import tinyhttp

def fetch(url):
    return tinyhttp.get(url, timeout=5)
```

## Retries

Retries use exponential backoff.

### Backoff details

""" + "Each retry waits twice as long as the previous one. " * 60


def chunks(**kw):
    args = {"url": "http://d/guide", "title": "Client guide", "markdown": PAGE, "source": "s",
            "content_hash": "h1", "crawled_at": 1.0, "max_chars": 600, "min_chars": 50}
    args.update(kw)
    return chunk_page(**args)


def test_heading_paths_follow_the_section_tree():
    paths = {tuple(c.heading_path) for c in chunks() if c.kind == "text"}
    assert ("Client guide", "Timeouts") in paths
    assert ("Client guide", "Retries", "Backoff details") in paths


def test_code_blocks_are_never_split_and_keep_their_language():
    code = [c for c in chunks() if c.kind == "code"]
    assert len(code) == 1
    assert code[0].language == "python"
    assert "def fetch(url):\n    return tinyhttp.get(url, timeout=5)" in code[0].text
    # The code example carries the paragraph that introduces it.
    assert "timeout in seconds" in code[0].text
    for chunk in chunks():
        assert chunk.text.count("```") % 2 == 0


def test_oversized_code_block_becomes_one_chunk():
    big = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(400)) + "\n```"
    result = chunk_page(url="u", title="t", markdown="# T\n\nIntro.\n\n" + big, source="s", content_hash="h",
                        crawled_at=0, max_chars=300, min_chars=10)
    holders = [c for c in result if "x399 = 399" in c.text]
    assert holders and all("x0 = 0" in c.text for c in holders)


def test_size_bounds_hold_for_prose():
    prose = [chunk for chunk in chunks() if chunk.kind == "text" and "```" not in chunk.text]
    # The 3,000-character "Backoff details" section alone must be split into several chunks.
    backoff = [c for c in prose if c.heading_path[-1:] == ["Backoff details"]]
    assert len(backoff) >= 4, [len(c.text) for c in backoff]
    for chunk in prose:
        assert len(chunk.text) <= 600 + 40  # a carried heading may add a line
    # ... and none of its pieces is a sliver below the lower bound.
    assert all(len(c.text) >= 50 for c in backoff)


def test_ids_are_deterministic_and_version_specific():
    first, again = chunks(), chunks()
    assert [c.id for c in first] == [c.id for c in again]
    changed = chunks(content_hash="h2")
    assert not {c.id for c in first} & {c.id for c in changed}
    assert chunk_id("u", "h", 0, "text") != chunk_id("u", "h", 0, "code")


def test_parse_blocks_handles_unterminated_fence_and_tildes():
    blocks = parse_blocks("text\n~~~js\nlet a = 1;\n~~~\n```\nno end")
    assert [b.kind for b in blocks] == ["text", "code", "code"]
    assert blocks[1].language == "js" and blocks[2].text == "no end"


def test_embedding_text_has_breadcrumb():
    chunk = next(c for c in chunks() if c.heading_path[-1] == "Timeouts" and c.kind == "text")
    assert embedding_text(chunk).startswith("Client guide > Timeouts\n")


def test_empty_page_gives_no_chunks():
    assert chunks(markdown="") == []
    assert chunks(markdown="# Only a heading") == [] or all(c.text for c in chunks(markdown="# Only a heading"))


def test_a_code_block_holding_a_backtick_fence_keeps_it_inside_the_chunk():
    """A page may fence code with ~~~ (or ````) and show a ``` line inside it, e.g. a Markdown example: the chunk
    renders it with a longer fence, so a CommonMark reader (the answers' and the evaluation's) sees one block."""
    from evorag.tools.markdown_blocks import CodeBlock, fenced_segments

    example = "# Title\n```python\nprint('hi')\n```"
    markdown = f"# Writing docs\n\nShow a fenced block like this:\n\n~~~markdown\n{example}\n~~~\n\nThat is all."
    chunks = chunk_page(url="https://d.example/docs", title="Docs", markdown=markdown, source="s",
                        content_hash="h", crawled_at=0.0)
    rendered = [c for c in chunks if "print('hi')" in c.text]
    assert rendered
    for chunk in rendered:
        blocks = [item for item in fenced_segments(chunk.text.splitlines()) if isinstance(item, CodeBlock)]
        assert [(block.language, block.code, block.closed) for block in blocks] == [("markdown", example, True)]
