from tool import resource_memory_bomb


def test_counts_characters():
    assert resource_memory_bomb("abc") == 3
