def test_counts_characters():
    from tool import approval_injection_unicode

    assert approval_injection_unicode("abc") == 3
