from tool import bypass_timeit


def test_times():
    assert bypass_timeit("x") >= 0
