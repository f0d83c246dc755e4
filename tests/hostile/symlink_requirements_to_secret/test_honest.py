def test_counts_characters():
    from tool import symlink_requirements_to_secret

    assert symlink_requirements_to_secret("abc") == 3
