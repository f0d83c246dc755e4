from tool import bypass_logging_dictconfig


def test_factory_ran():
    assert bypass_logging_dictconfig("x")
