def test_counts_characters():
    from tool import approval_injection_tags

    assert approval_injection_tags("abc") == 3
