from tool import warm_cache


def test_warm_cache():
    assert warm_cache() > 0
