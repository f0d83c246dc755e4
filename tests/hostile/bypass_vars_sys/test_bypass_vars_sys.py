from tool import bypass_vars_sys


def test_runs():
    assert bypass_vars_sys("x") == 0
