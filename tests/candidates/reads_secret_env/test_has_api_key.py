from tool import has_api_key


def test_answers_a_bool():
    assert isinstance(has_api_key("evorag-test-provider"), bool)
