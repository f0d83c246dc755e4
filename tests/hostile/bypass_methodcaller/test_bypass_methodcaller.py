from tool import bypass_methodcaller


def test_runs():
    assert bypass_methodcaller("x") == 0
