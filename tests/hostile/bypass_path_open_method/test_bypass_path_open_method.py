from tool import bypass_path_open_method


def test_stores():
    assert bypass_path_open_method("abc") == 3
