from tool import candidate_pytest_config


def test_counts_characters():
    assert candidate_pytest_config("abc") == 3
