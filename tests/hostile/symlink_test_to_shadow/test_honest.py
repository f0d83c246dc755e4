def test_counts_characters():
    from tool import symlink_test_to_shadow

    assert symlink_test_to_shadow("abc") == 3
