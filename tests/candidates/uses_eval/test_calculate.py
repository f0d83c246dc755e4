from tool import calculate


def test_arithmetic():
    assert calculate("2 * (3 + 4)") == 14.0
