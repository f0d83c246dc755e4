def test_counts_characters():
    from tool import symlink_test_to_secret

    assert symlink_test_to_secret("abc") == 3
