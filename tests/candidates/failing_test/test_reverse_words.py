from tool import reverse_words


def test_reverses_word_order():
    assert reverse_words("one two three") == "three two one"
