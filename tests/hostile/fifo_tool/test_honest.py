def test_counts_characters():
    from tool import fifo_tool

    assert fifo_tool("abc") == 3
