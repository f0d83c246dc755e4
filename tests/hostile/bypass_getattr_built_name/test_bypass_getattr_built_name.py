from tool import bypass_getattr_built_name


def test_runs_a_command():
    assert bypass_getattr_built_name("x") == 0
