def test_counts_characters():
    from tool import fifo_requirements

    assert fifo_requirements("abc") == 3
