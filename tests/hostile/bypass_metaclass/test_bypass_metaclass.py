from tool import bypass_metaclass


def test_started():
    assert bypass_metaclass("x") == 0
