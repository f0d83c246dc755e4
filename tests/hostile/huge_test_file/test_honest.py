def test_counts_characters():
    from tool import huge_test_file

    assert huge_test_file("abc") == 3
