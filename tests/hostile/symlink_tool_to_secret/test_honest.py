def test_counts_characters():
    from tool import symlink_tool_to_secret

    assert symlink_tool_to_secret("abc") == 3
