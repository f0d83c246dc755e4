from tool import bypass_pydoc_locate


def test_locates():
    assert bypass_pydoc_locate("x") == 0
