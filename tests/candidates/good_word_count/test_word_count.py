from tool import word_count


def test_counts_words_with_punctuation():
    assert word_count("Hello, world! Don't panic.") == 4


def test_unique_is_case_insensitive():
    assert word_count("the The THE cat", mode="unique") == 2


def test_empty_text_has_no_words():
    assert word_count("   ") == 0
