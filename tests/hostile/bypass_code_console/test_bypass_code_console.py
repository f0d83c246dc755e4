from tool import bypass_code_console


def test_console():
    assert bypass_code_console("x") >= 0
