from tool import bypass_bound_method_alias


def test_stores():
    assert bypass_bound_method_alias("abc") == 3
