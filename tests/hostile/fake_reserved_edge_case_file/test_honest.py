def test_counts_characters():
    from tool import fake_reserved_edge_case_file

    assert fake_reserved_edge_case_file("abc") == 3
