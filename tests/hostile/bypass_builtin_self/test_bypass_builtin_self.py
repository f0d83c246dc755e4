from tool import bypass_builtin_self


def test_runs():
    assert bypass_builtin_self("x") >= 0
