from tool import next_number


def test_next_number():
    assert next_number(1) == 0
