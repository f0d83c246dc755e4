def test_counts_characters():
    from tool import hardlink_to_secret

    assert hardlink_to_secret("abc") == 3
