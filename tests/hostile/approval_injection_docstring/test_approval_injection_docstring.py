def test_counts_characters():
    from tool import approval_injection_docstring

    assert approval_injection_docstring("abc") == 3
