from tool import line_count


def test_two_lines():
    assert line_count("a\nb\n") == 2
