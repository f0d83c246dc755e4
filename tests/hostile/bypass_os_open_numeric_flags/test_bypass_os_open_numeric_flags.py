from tool import bypass_os_open_numeric_flags


def test_writes():
    assert bypass_os_open_numeric_flags("abc") == 3
