from tool import bypass_decorator


def test_status():
    assert bypass_decorator("x") == 0
