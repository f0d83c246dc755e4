def test_counts_characters():
    from tool import fake_delete_tests

    assert fake_delete_tests("abc") == 3


del test_counts_characters
