from tool import bypass_sqlite_file


def test_stores():
    assert bypass_sqlite_file("x") >= 1
