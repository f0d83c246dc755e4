def test_counts_characters():
    from tool import symlink_candidate_dir_escape

    assert symlink_candidate_dir_escape("abc") == 3
