from tool import candidate_conftest


def test_counts_characters():
    assert candidate_conftest("abc") == 3
