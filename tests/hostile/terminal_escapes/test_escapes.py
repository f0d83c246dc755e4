from tool import terminal_escapes

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[1;31mRED\x1b]8;;http://evil.invalid\x1b\\link\x9b31m\u202eevil"


def test_counts_characters():
    print(ESCAPES)
    assert terminal_escapes("abc") == 3, ESCAPES
