from tool import bypass_utf7_coding_cookie


def test_hidden_code_ran():
    assert bypass_utf7_coding_cookie("abc") == -1  # -1 only when the hidden lines ran
