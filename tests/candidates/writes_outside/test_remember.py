from tool import remember


def test_returns_the_length():
    assert remember("note") == 4
