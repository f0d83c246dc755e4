from tool import bypass_format_string_globals


def test_leaks():
    assert "SECRET_NAME" in bypass_format_string_globals("x")
